"""Rule cross_library: the FASTAR-trained posterior on the family's test SFHs synthesised from MILES and FASTAR."""

import json

import xarray as xr

from galaxy_sbi.plots.ssp_systematic import plot_cross_library
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.posterior import SpectraPosterior
from galaxy_sbi.spectra.ssp_systematic import cross_library_test
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    with xr.open_dataset(smk.input.sfh) as sfh, xr.open_dataset(smk.input.grid) as grid:
        with xr.open_dataset(smk.input.miles) as miles:
            out, arrays = cross_library_test(
                SpectraPosterior.load(smk.input.posterior),
                load_encoder(smk.input.encoder),
                sfh.load(),
                grid.load(),
                miles.load(),
                p.spectra,
                p.snr,
                p.n_samples,
                p.seed,
                instrument=p.instrument,
            )
    out.update(
        family=smk.wildcards.family,
        miles=miles.attrs.get("source_detail"),
        miles_library=miles.attrs.get("library"),
        miles_imf=miles.attrs.get("imf"),
        miles_isochrones=miles.attrs.get("isochrones"),
    )
    with open(smk.output.summary, "w") as f:
        json.dump(out, f, indent=2)
    plot_cross_library(out, arrays, smk.output.png, smk.wildcards.family)


run_script(main, snakemake)  # noqa: F821

"""Rule off_grid_test_set: test spectra off the training lattice (own SFH and continuous [M/H] each)."""

import xarray as xr

from galaxy_sbi.io import provenance_attrs
from galaxy_sbi.spectra.off_grid import off_grid_set
from galaxy_sbi.spectra.synth import write_cube
from galaxy_sbi.workflow import run_script, runtime


def main(smk):
    p = smk.params
    with xr.open_dataset(smk.input.library) as library:
        ds = off_grid_set(smk.wildcards.family, p.sfh, library.load(), p.interpolate, p.spectra, p.n_spectra, p.seed)
    ds.attrs.update(
        provenance_attrs(
            {
                "sfh": p.sfh,
                "interpolate": p.interpolate,
                "spectra": p.spectra,
                "n_spectra": p.n_spectra,
                "seed": p.seed,
            },
            stage=f"off_grid_test_set {smk.wildcards.family}",
        )
    )
    ds.attrs["ssp_config_hash"] = library.attrs.get("config_hash", "?")
    storage = runtime(smk, "spectra")
    write_cube(ds, smk.output.cube, storage["chunk_samples"], storage["complevel"])


run_script(main, snakemake)  # noqa: F821

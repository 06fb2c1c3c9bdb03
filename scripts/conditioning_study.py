"""Rule conditioning_study: amortised vs matched vs conditioned posteriors at the fixed degradations."""

import json
import logging

import xarray as xr

from galaxy_sbi.plots import plot_conditioning
from galaxy_sbi.spectra.conditioning import compare
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.error_spectra import evaluation_shape, load_shapes
from galaxy_sbi.spectra.posterior import SpectraPosterior
from galaxy_sbi.workflow import run_script, runtime

log = logging.getLogger("conditioning_study")


def main(smk):
    p = smk.params
    shapes = load_shapes(smk.input.error_spectra)  # read once: the training copies' and the test settings' noise
    settings = {k: v for k, v in p.npe.items() if k != "noise"}  # the degradations carry the noise
    data = load_family(list(smk.input.cubes))
    rows = [i for s in ("train", "validation") for i in data.indices(s)]
    with xr.open_dataset(smk.input.off_grid) as off:
        test_flux, test_labels = off.flux.values, off.labels.values
    log.info("%d training spectra, %d off-grid test spectra", len(rows), len(test_flux))
    out = compare(
        SpectraPosterior.load(smk.input.posterior),
        load_encoder(smk.input.encoder),
        data.flux[rows],
        data.labels[rows].astype(float),
        test_flux,
        test_labels,
        data.wavelength,
        data.parameters,
        settings,
        {
            **p.evaluation["degraded"],
            "error_shape": evaluation_shape(shapes, p.error_spectra["evaluation"]),
        },
        {
            **p.conditioning,
            "error_shapes": shapes,
            "error_power_range": p.error_spectra["power_range"],
        },
        p.evaluation["n_samples"],
        p.evaluation["seed"],
        p.seed,
        batch=runtime(smk, "evaluation")["encode_batch_size"],
    )
    out["family"] = smk.wildcards.family
    with open(smk.output.summary, "w") as f:
        json.dump(out, f, indent=1)
    plot_conditioning(
        out,
        smk.output.png,
        f"{smk.wildcards.family}: {len(test_flux)} degraded off-grid test spectra (blue mask: rest frame < "
        f"{p.evaluation['degraded']['blue_mask_below_angstrom']:g} Å); amortised, matched and conditioned posteriors",
    )


run_script(main, snakemake)  # noqa: F821

"""Rule latents_plots: the latent interpretation figures of one family (seed section 3) and the head's accuracy."""

import xarray as xr

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.latents import interpretation_plots
from galaxy_sbi.workflow import run_script


def main(smk):
    data = load_family(list(smk.input.cubes))
    with xr.open_dataset(smk.input.latents) as latents:
        interpretation_plots(
            latents.load(),
            data,
            dict(smk.output.items()),
            smk.params.latents,
            history=smk.input.history,
            seed=smk.params.seed,
        )


run_script(main, snakemake)  # noqa: F821

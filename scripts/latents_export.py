"""Rule latents_export: the 16 latents (and the head's predictions) of every spectrum of one family."""

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.latents import export_latents
from galaxy_sbi.workflow import run_script


def main(smk):
    import torch

    torch.set_num_threads(smk.threads)
    data = load_family(list(smk.input.cubes))
    export_latents(data, smk.input.model, smk.output.latents, smk.params.latents, smk.params.encoder)


run_script(main, snakemake)  # noqa: F821

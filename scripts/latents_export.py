"""Rule latents_export: the 16 latents (and the head's predictions) of every spectrum of one family."""

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.latents import export_latents
from galaxy_sbi.workflow import run_script, runtime


def main(smk):
    data = load_family(list(smk.input.cubes))
    export_latents(data, smk.input.model, smk.output.latents, runtime(smk, "latents")["batch_size"])


run_script(main, snakemake)  # noqa: F821

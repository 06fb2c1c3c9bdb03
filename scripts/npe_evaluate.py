"""Rule npe_evaluate: posterior of every test spectrum (clean and at finite S/N) -> metrics.json and plots."""

import json

from galaxy_sbi.spectra.error_spectra import evaluation_shape, load_shapes
from galaxy_sbi.spectra.evaluation import evaluate_family
from galaxy_sbi.workflow import run_script, runtime


def main(smk):
    metrics = evaluate_family(
        smk.input.posterior,
        smk.input.latents,
        smk.input.cubes,
        smk.input.encoder,
        smk.params.evaluation,
        smk.params.seed,
        smk.params.npe_noise,
        smk.wildcards.family,
        smk.output,
        encode_batch_size=runtime(smk, "evaluation")["encode_batch_size"],
        off_grid_path=smk.input.off_grid,
        error_shape=evaluation_shape(load_shapes(smk.input.error_spectra), smk.params.error_spectra_evaluation),
    )
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

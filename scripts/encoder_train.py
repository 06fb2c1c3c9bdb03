"""Rule encoder_train: train one SFH family's encoder (resumes from {work_dir}/checkpoints/last.ckpt)."""

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import train_encoder
from galaxy_sbi.workflow import run_script, runtime


def main(smk):
    data = load_family(list(smk.input.cubes))
    outputs = {k: smk.output[k] for k in ("model", "metrics", "history")}
    train_encoder(
        data,
        smk.params.work_dir,
        smk.params.encoder,
        smk.params.seed,
        threads=smk.threads,
        progress=True,
        outputs=outputs,
        runtime=runtime(smk, "encoder"),
    )


run_script(main, snakemake)  # noqa: F821

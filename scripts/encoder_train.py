"""Rule encoder_train: train one SFH family's encoder (resumes from results/encoder/{family}/checkpoints/last.ckpt)."""

from pathlib import Path

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import train_encoder
from galaxy_sbi.workflow import run_script


def main(smk):
    data = load_family(list(smk.input.cubes))
    out_dir = Path(smk.output.model).parent
    train_encoder(data, out_dir, smk.params.encoder, smk.params.seed, threads=smk.threads, progress=True)


run_script(main, snakemake)  # noqa: F821

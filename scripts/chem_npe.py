"""Rule chem_npe: train one NPE (joint: six parameters; global: alpha_IMF and log10_N_Ia)."""

from galaxy_sbi.chem import npe
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p, kind = smk.params, smk.wildcards.kind
    emulator = load_emulator(smk.input.emulator) if hasattr(smk.input, "emulator") else None
    yields = load_yields(p.yields) if p.yields else None  # the simulator's, where it draws (common.smk)
    posterior, summary, acceptance = npe.train_kind(
        kind, p.npe, Priors.from_config(p.priors), emulator, yields, p.seed, derived_rng(p.seed, "chem_npe", kind)
    )
    npe.save_posterior(posterior, smk.output.posterior, summary, acceptance=acceptance.to_dict())


run_script(main, snakemake)  # noqa: F821

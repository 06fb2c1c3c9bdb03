"""emcee on the emulator (hierarchical posterior, all local parameters sampled) for a few stars, timed."""

import json

import numpy as np

from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.mcmc import emcee_timing
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p, cfg = smk.params, smk.params.timing["emcee"]
    with np.load(smk.input.data) as d:
        obs, truth = d["obs"][: cfg["n_stars"]], d["truth"]
    out = emcee_timing(
        load_emulator(smk.input.emulator),
        obs,
        truth,
        Priors.from_config(p.priors),
        p.noise_dex,
        cfg["n_walkers"],
        cfg["n_steps"],
        derived_rng(p.seed, "chem_timing"),
    )
    with open(smk.output.timing, "w") as f:
        json.dump(out, f, indent=2)


run_script(main, snakemake)  # noqa: F821

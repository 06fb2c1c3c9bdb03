"""Rule chem_timing: emcee on the emulator to convergence for 1 ... 30 stars of data set 1, against the NPE."""

import csv
import json

import numpy as np

from galaxy_sbi.benchmarking import cpu_model
from galaxy_sbi.chem import mcmc, multistar
from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.plots import plot_chem_timing
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    with np.load(smk.input.data) as d:
        obs, truth = d["obs"], d["truth"]
    combination = multistar.load_combination(smk.input.joint, smk.input.glob, smk.input.systematics, p.multistar)
    emulator, priors = load_emulator(smk.input.emulator), Priors.from_config(p.priors)
    rng = derived_rng(p.seed, "chem_timing")
    result = mcmc.timing_study(emulator, obs, truth, priors, p.noise_dex, p.timing["emcee"], rng, combination)
    with open(smk.output.json, "w") as f:
        json.dump(result, f, indent=2)
    with open(smk.output.csv, "w", newline="") as f:
        keys = [k for k in result["rows"][0] if not isinstance(result["rows"][0][k], list)]
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["rows"])
    with open(smk.output.md, "w") as f:
        f.write(mcmc.timing_markdown(result, cpu_model()))
    plot_chem_timing(result, smk.output.png)


run_script(main, snakemake)  # noqa: F821

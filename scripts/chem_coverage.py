"""Coverage of both multi-star combinations over many mock galaxies (our simulator, training yields)."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar, npe
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.plots import plot_chem_coverage
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_coverage")
    p = smk.params
    priors = Priors.from_config(p.priors)
    joint, joint_summary = npe.load_posterior(smk.input.joint)
    glob, _, acceptance = npe.load_npe(smk.input.glob)
    sys_cov = multistar.read_systematics_cov(smk.input.systematics)
    rng = derived_rng(p.seed, "chem_coverage")
    res = multistar.coverage_study(
        load_yields(p.yields),
        priors,
        joint,
        glob,
        n_galaxies=p.coverage["n_galaxies"],
        star_counts=p.coverage["star_counts"],
        noise_dex=p.noise_dex,
        n_samples=p.multistar["n_samples"],
        n_grid=p.multistar["n_grid"],
        rng=rng,
        log=log,
        acceptance=acceptance,
        sys_cov=sys_cov,
        n_coarse=p.multistar.get("n_coarse"),
        joint_prior=joint_summary.get("training_prior", "box"),
    )
    levels = np.linspace(0, 1, 21)
    summary = multistar.coverage_summary(res, levels)
    np.savez(smk.output.data, **res)
    with open(smk.output.metrics, "w") as f:
        json.dump(summary, f, indent=2)
    plot_chem_coverage(summary, smk.output.png)


run_script(main, snakemake)  # noqa: F821

"""Coverage of both multi-star combinations over many mock galaxies (our simulator, training yields)."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.plots import plot_chem_coverage
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    combination = multistar.load_combination(smk.input.joint, smk.input.glob, smk.input.systematics, p.multistar)
    res = multistar.coverage_study(
        load_yields(p.yields),
        Priors.from_config(p.priors),
        n_galaxies=p.coverage["n_galaxies"],
        star_counts=p.coverage["star_counts"],
        noise_dex=p.noise_dex,
        rng=derived_rng(p.seed, "chem_coverage"),
        log=logging.getLogger("chem_coverage"),
        **combination,
    )
    summary = multistar.coverage_summary(res, np.linspace(0, 1, 21))
    np.savez(smk.output.data, **res)
    with open(smk.output.metrics, "w") as f:
        json.dump(summary, f, indent=2)
    plot_chem_coverage(summary, smk.output.png)


run_script(main, snakemake)  # noqa: F821

"""Global parameters of one data set's galaxy from 1 ... N stars: the study's Gaussian product and the grid."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    combination = multistar.load_combination(smk.input.joint, smk.input.glob, smk.input.systematics, p.multistar)
    with np.load(smk.input.data) as d:
        obs, truth, note = d["obs"], d["truth"], str(d["note"])
    counts = sorted({min(n, len(obs)) for n in p.multistar["star_counts"]})  # a smaller data set stops at its size
    res = multistar.infer_vs_nstars(
        obs, counts, priors=Priors.from_config(p.priors), truth=truth, seed=p.seed, **combination
    )
    multistar.log_rows(res, logging.getLogger("chem_multistar"))
    out = {"dataset": smk.wildcards.dataset, "note": note, "truth": truth.tolist(), **res}
    with open(smk.output.result, "w") as f:
        json.dump(out, f, indent=2, default=lambda a: np.asarray(a).tolist())


run_script(main, snakemake)  # noqa: F821

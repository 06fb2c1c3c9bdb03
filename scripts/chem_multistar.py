"""Global parameters of one data set's galaxy from 1 ... N stars: the study's Gaussian product and the grid."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar, npe
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_multistar")
    p = smk.params
    priors = Priors.from_config(p.priors)
    joint, joint_summary = npe.load_posterior(smk.input.joint)
    glob, _, acceptance = npe.load_npe(smk.input.glob)
    sys_cov = multistar.read_systematics_cov(smk.input.systematics)
    with np.load(smk.input.data) as d:
        obs, truth, note = d["obs"], d["truth"], str(d["note"])
    ms = p.multistar
    counts = sorted({min(n, len(obs)) for n in ms["star_counts"]})  # a smaller data set stops at its size
    res = multistar.infer_vs_nstars(
        obs,
        counts,
        joint,
        glob,
        priors,
        truth,
        n_samples=ms["n_samples"],
        n_grid=ms["n_grid"],
        seed=p.seed,
        acceptance=acceptance,
        sys_cov=sys_cov,
        n_coarse=ms.get("n_coarse"),
        joint_prior=joint_summary.get("training_prior", "box"),
    )
    multistar.log_rows(res, log)
    out = {"dataset": smk.wildcards.dataset, "note": note, "truth": truth.tolist(), **res}
    with open(smk.output.result, "w") as f:
        json.dump(out, f, indent=2, default=lambda a: np.asarray(a).tolist())


run_script(main, snakemake)  # noqa: F821

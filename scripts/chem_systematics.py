"""Systematic-error kernel of the calibrated (grid) combination from mock galaxies of the training simulator."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar, npe
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.priors import N_GLOBAL, Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_systematics")
    p = smk.params
    priors = Priors.from_config(p.priors)
    glob, _, acceptance = npe.load_npe(smk.input.glob)
    cfg = p.systematics
    if cfg["n_galaxies"] > 0:
        rng = derived_rng(p.seed, "chem_systematics")  # not the coverage study's stream
        res = multistar.systematics_study(
            load_yields(p.yields),
            priors,
            glob,
            n_galaxies=cfg["n_galaxies"],
            n_stars=cfg["n_stars"],
            noise_dex=p.noise_dex,
            n_grid=p.grid["n_grid"],
            rng=rng,
            acceptance=acceptance,
            log=log,
            n_coarse=p.grid.get("n_coarse"),
        )
        log.info(
            "systematic sd %s (mean offset %s, rms offset %s, mean statistical sd %s, %d galaxies x %d stars, "
            "%d outliers: truths %s)",
            np.round(res["sys_sd"], 4),
            np.round(res["mean_offset"], 4),
            np.round(res["rms_offset"], 4),
            np.round(res["mean_stat_sd"], 4),
            res["n_galaxies"],
            res["n_stars"],
            res["n_outliers"],
            np.round(res["truths"][~res["inlier"]], 3).tolist(),
        )
    else:
        res = {
            "sys_cov": np.zeros((N_GLOBAL, N_GLOBAL)),
            "sys_sd": np.zeros(N_GLOBAL),
            "n_galaxies": 0,
            "note": "chem.systematics.n_galaxies = 0: no systematic kernel (grid = grid_stat)",
        }
    with open(smk.output.systematics, "w") as f:
        json.dump(res, f, indent=2, default=lambda a: np.asarray(a).tolist())


run_script(main, snakemake)  # noqa: F821

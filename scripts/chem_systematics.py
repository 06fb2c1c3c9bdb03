"""Rule chem_systematics: systematic-error kernel of the calibrated (grid) combination from mock galaxies of the
training simulator (their own random stream, not the coverage study's)."""

import json
import logging

import numpy as np

from galaxy_sbi.chem import multistar, npe
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p, cfg = smk.params, smk.params.systematics
    glob, _, acceptance = npe.load_npe(smk.input.glob)
    res = multistar.systematics_kernel(
        load_yields(p.yields),
        Priors.from_config(p.priors),
        glob,
        n_galaxies=cfg["n_galaxies"],
        n_stars=cfg["n_stars"],
        noise_dex=p.noise_dex,
        n_grid=p.grid["n_grid"],
        n_coarse=p.grid.get("n_coarse"),
        rng=derived_rng(p.seed, "chem_systematics"),
        acceptance=acceptance,
        log=logging.getLogger("chem_systematics"),
    )
    with open(smk.output.systematics, "w") as f:
        json.dump(res, f, indent=2, default=lambda a: np.asarray(a).tolist())


run_script(main, snakemake)  # noqa: F821

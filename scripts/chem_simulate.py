"""One chunk of simulator runs: accepted sets of the training and validation sets (uniform training box) and of
the population set (parameters from the Gaussian population prior, as the study's training and validation data
were drawn at the seed's time: the distribution its emulator APE of 1.6 % and NPE APE of 9.1 % refer to)."""

import logging

import numpy as np

from galaxy_sbi.chem.datasets import OBS_LABELS, load_yields, simulate_valid
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_simulate")
    p = smk.params
    chunk = int(smk.wildcards.chunk)
    priors = Priors.from_config(p.priors)
    yields = load_yields(p.yields)
    rng = derived_rng(p.seed, "chem_simulate", str(chunk))
    out = {}
    for split, total, draw in (
        ("train", p.simulate["n_train"], priors.draw_uniform),
        ("validation", p.simulate["n_validation"], priors.draw_uniform),
        ("population", p.simulate["n_validation"], priors.draw_population),
    ):
        n = len(np.array_split(np.arange(total), p.simulate["chunks"])[chunk])
        theta, x, acc = simulate_valid(draw, n, yields, rng)
        out[f"theta_{split}"], out[f"x_{split}"] = theta, x
        log.info("chunk %d %s: %d accepted sets (acceptance %.2f)", chunk, split, n, acc)
        out[f"acceptance_{split}"] = acc
    np.savez(smk.output.chunk, **out, labels=np.array(OBS_LABELS))


run_script(main, snakemake)  # noqa: F821

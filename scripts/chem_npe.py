"""Train one NPE (joint: six parameters; global: alpha_IMF and log10_N_Ia) on noisy emulator draws."""
import logging

import numpy as np
import torch

from galaxy_sbi.chem import npe
from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.priors import N_GLOBAL, Priors
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_npe")
    torch.set_num_threads(smk.threads)
    p = smk.params
    kind = smk.wildcards.kind
    priors = Priors.from_config(p.priors)
    model = load_emulator(smk.input.emulator)
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 7002, 0 if kind == "joint" else 1]))
    cfg = p.npe
    theta, x = npe.training_set(model, priors, cfg["n_simulations"], cfg["noise_dex"], rng, kind=kind)
    prior = priors.box() if kind == "joint" else priors.box(slice(0, N_GLOBAL))
    log.info("training the %s NPE on %d emulator draws (%s)", kind, len(theta), cfg[kind])
    posterior, summary = npe.train_npe(theta, x, prior, batch_size=cfg["batch_size"],
                                       learning_rate=cfg["learning_rate"], max_epochs=cfg["max_epochs"],
                                       stop_after_epochs=cfg["stop_after_epochs"], seed=p.seed, **cfg[kind])
    npe.save_posterior(posterior, smk.output.posterior, summary)


run_script(main, snakemake)  # noqa: F821

"""Neural posterior estimation on emulator draws (sbi).

Two estimators are trained on the same recipe (parameters from the prior, abundances from the emulator
plus ``noise_dex`` Gaussian noise):

* ``joint``: all six parameters, uniform +-5 sigma prior on each: the study's NPE (MAF, 8 hidden features,
  4 transforms); used for the validation metrics (APE, SBC, TARP) and for the study's Gaussian combination.
* ``global``: only (alpha_IMF, log10_N_Ia), uniform prior on the box, with the local parameters drawn from
  the *population* prior during training, so that they are marginalised exactly as they are distributed in
  a galaxy. Its density divided by its (uniform) prior is the per-star marginal likelihood p(x | alpha,
  N_Ia) up to a constant, which the calibrated multi-star combination sums on a grid
  (:mod:`galaxy_sbi.chem.multistar`).
"""

from __future__ import annotations

import logging

import numpy as np

# training, sampling and I/O are the generic ones the spectra graph uses too
from ..inference.npe import load_posterior, log_prob_grid, sample, save_posterior, train_npe  # noqa: F401
from .emulator import predict
from .priors import N_GLOBAL, Priors

log = logging.getLogger(__name__)


def training_set(emulator, priors: Priors, n: int, noise_dex: float, rng: np.random.Generator, kind: str = "joint"):
    """(theta, x): theta (n, 6) for ``joint`` or (n, 2) for ``global``; x the noisy emulated observables."""
    if kind == "joint":
        theta = priors.draw_uniform(n, rng)
        full = theta
    elif kind == "global":
        full = priors.draw_population(n, rng)
        full[:, :N_GLOBAL] = rng.uniform(priors.low[:N_GLOBAL], priors.high[:N_GLOBAL], (n, N_GLOBAL))
        theta = full[:, :N_GLOBAL]
    else:
        raise ValueError(f"unknown NPE kind {kind!r}")
    x = predict(emulator, full)
    return theta, x + rng.normal(0.0, noise_dex, x.shape)

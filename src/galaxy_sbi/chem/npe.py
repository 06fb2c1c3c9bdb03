"""Neural posterior estimation on emulator (or simulator) draws (sbi).

Two estimators are trained on the same recipe (parameters from the prior, abundances plus ``noise_dex``
Gaussian noise):

* ``joint``: all six parameters, uniform +-5 sigma prior on each, abundances from the *emulator*: the
  study's NPE (MAF, 8 hidden features, 4 transforms); used for the validation metrics (APE, SBC, TARP) and
  for the study's Gaussian combination.
* ``global``: only (alpha_IMF, log10_N_Ia), uniform prior on the box, with the local parameters drawn from
  the *population* prior during training, so that they are marginalised exactly as they are distributed in
  a galaxy. Its density divided by its training prior of Lambda is the per-star marginal likelihood
  p(x | alpha, N_Ia) up to a constant, which the calibrated multi-star combination sums on a grid
  (:mod:`galaxy_sbi.chem.multistar`). Abundances from (``source``):

  - ``simulator`` (default): the simulator itself, rejected sets dropped, as in every data set and mock
    galaxy. A star exists only where the simulator accepts its parameters, and the acceptance depends on
    Lambda (under the population prior of the locals: 50 % at alpha_IMF = -2.9, 85 % at -2.3, 93 % at
    -1.7), so the training prior of Lambda among accepted sets is U(Lambda) P(acc | Lambda) and the
    per-star likelihood is q(Lambda | x) / P(acc | Lambda). :class:`AcceptanceModel` (a logistic fit of the
    simulator's accept flags in Lambda) supplies P(acc | Lambda). No emulator error enters.
  - ``emulator``: the study's recipe (emulator outputs for every draw, rejected regions included, no
    acceptance term). Per-star emulator errors add up coherently over N stars.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

# training, sampling and I/O are the generic ones the spectra graph uses too
from ..inference.npe import load_posterior, log_prob_grid, sample, save_posterior, train_npe  # noqa: F401
from .emulator import predict
from .priors import N_GLOBAL, Priors

log = logging.getLogger(__name__)

GLOBAL_SOURCES = ("simulator", "emulator")


def _poly_features(z: np.ndarray, degree: int) -> np.ndarray:
    """All monomials z0^i z1^j with i + j <= degree, (..., n_features)."""
    z = np.asarray(z, float)
    cols = [z[..., 0] ** i * z[..., 1] ** (d - i) for d in range(degree + 1) for i in range(d + 1)]
    return np.stack(cols, -1)


class AcceptanceModel:
    """P(simulator accepts | Lambda) with the locals from the population prior: logistic regression on the
    monomials of the standardised (alpha_IMF, log10_N_Ia) up to ``degree`` (IRLS, tiny ridge)."""

    def __init__(self, coef=None, centre=None, scale=None, degree: int = 3):
        self.coef = None if coef is None else np.asarray(coef, float)
        self.centre, self.scale, self.degree = centre, scale, int(degree)

    @classmethod
    def fit(cls, lam, accepted, centre, scale, degree: int = 3, ridge: float = 1e-6, n_iter: int = 50):
        m = cls(None, np.asarray(centre, float), np.asarray(scale, float), degree)
        X = _poly_features((np.asarray(lam) - m.centre) / m.scale, degree)
        y = np.asarray(accepted, float)
        w = np.zeros(X.shape[1])
        w[0] = np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))
        for _ in range(n_iter):
            p = 1 / (1 + np.exp(-X @ w))
            H = X.T @ (X * (p * (1 - p))[:, None]) + ridge * len(y) * np.eye(len(w))
            step = np.linalg.solve(H, X.T @ (y - p) - ridge * len(y) * w)
            w += step
            if np.max(np.abs(step)) < 1e-8:
                break
        m.coef = w
        return m

    def log_p(self, lam) -> np.ndarray:
        """log P(acc | Lambda) at ``lam`` (..., 2)."""
        if self.coef is None:
            return np.zeros(np.shape(lam)[:-1])
        eta = _poly_features((np.asarray(lam) - self.centre) / self.scale, self.degree) @ self.coef
        return -np.logaddexp(0.0, -eta)

    def to_dict(self) -> dict:
        if self.coef is None:
            return {}
        return {
            "coef": self.coef.tolist(),
            "centre": np.asarray(self.centre).tolist(),
            "scale": np.asarray(self.scale).tolist(),
            "degree": self.degree,
        }

    @classmethod
    def from_dict(cls, d) -> AcceptanceModel:
        if not d:
            return cls()
        return cls(d["coef"], np.asarray(d["centre"]), np.asarray(d["scale"]), d["degree"])


#: where the joint NPE's parameter draws come from: the Gaussian population prior (the posterior it learns is the
#: population posterior) or the uniform training box (a flat-prior posterior)
JOINT_PRIORS = ("population", "box")


def training_set(
    emulator,
    priors: Priors,
    n: int,
    noise_dex: float,
    rng: np.random.Generator,
    kind: str = "joint",
    source: str = "emulator",
    yields=None,
    joint_prior: str = "population",
):
    """(theta, x, info): theta (n, 6) for ``joint`` or (n, 2) for ``global``; x the noisy observables.

    ``joint_prior`` (``joint`` only): draw the six parameters from the population prior or the uniform box.
    ``source="simulator"`` (``global`` only) simulates with ``yields`` until ``n`` sets are accepted;
    ``info["acceptance"]`` is then the fitted :class:`AcceptanceModel`, else an empty model."""
    if kind == "joint":
        if source != "emulator":
            raise ValueError("the joint NPE is the study's: trained on emulator draws")
        if joint_prior not in JOINT_PRIORS:
            raise ValueError(f"unknown joint NPE prior {joint_prior!r} (one of {JOINT_PRIORS})")
        theta = priors.draw_population(n, rng) if joint_prior == "population" else priors.draw_uniform(n, rng)
        x = predict(emulator, theta)
        return theta, x + rng.normal(0.0, noise_dex, x.shape), {"acceptance": AcceptanceModel()}
    if kind != "global":
        raise ValueError(f"unknown NPE kind {kind!r}")

    def draw(m, r):
        full = priors.draw_population(m, r)
        full[:, :N_GLOBAL] = r.uniform(priors.low[:N_GLOBAL], priors.high[:N_GLOBAL], (m, N_GLOBAL))
        return full

    if source == "emulator":
        full = draw(n, rng)
        x = predict(emulator, full)
        return full[:, :N_GLOBAL], x + rng.normal(0.0, noise_dex, x.shape), {"acceptance": AcceptanceModel()}
    if source != "simulator":
        raise ValueError(f"unknown global NPE source {source!r} (one of {GLOBAL_SOURCES})")
    from .datasets import drop_h
    from .gce import simulate

    thetas, xs, lams, oks, need = [], [], [], [], n
    while need > 0:
        th = draw(int(need * 1.4) + 64, rng)
        ab, ok = simulate(th, yields)
        lams.append(th[:, :N_GLOBAL])
        oks.append(ok)
        thetas.append(th[ok, :N_GLOBAL])
        xs.append(drop_h(ab[ok]))
        need -= int(ok.sum())
    lam, ok = np.concatenate(lams), np.concatenate(oks)
    acc = AcceptanceModel.fit(lam, ok, priors.mean[:N_GLOBAL], priors.sigma[:N_GLOBAL])
    log.info("global NPE training set: %d simulator runs, %d accepted (%.2f)", len(ok), ok.sum(), ok.mean())
    theta, x = np.concatenate(thetas)[:n], np.concatenate(xs)[:n]
    return theta, x + rng.normal(0.0, noise_dex, x.shape), {"acceptance": acc}


def load_npe(path):
    """(posterior, summary, acceptance model) of a file written by :func:`save_posterior` in this graph."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=False)
    return blob["posterior"], blob["summary"], AcceptanceModel.from_dict(blob.get("acceptance", {}))


def train_kind(kind: str, cfg: dict, priors: Priors, emulator, yields, seed: int, rng: np.random.Generator):
    """Train the ``joint`` or the ``global`` NPE with the chem.npe settings ``cfg``: its draws (emulator for the
    joint NPE, ``cfg['global_source']`` for the global one), its prior box, its flow (``cfg[kind]``, whose
    batch_size / learning_rate / max_epochs override the shared ones). Returns (posterior, summary, acceptance)."""
    source = "emulator" if kind == "joint" else cfg["global_source"]
    n = cfg["n_simulations"] if kind == "joint" else cfg["n_simulations_global"]
    theta, x, info = training_set(
        emulator,
        priors,
        n,
        cfg["noise_dex"],
        rng,
        kind=kind,
        source=source,
        yields=yields if source == "simulator" else None,
        joint_prior=cfg.get("joint_prior", "population"),
    )
    prior = priors.box() if kind == "joint" else priors.box(slice(0, N_GLOBAL))
    log.info("training the %s NPE on %d %s draws (%s)", kind, len(theta), source, cfg[kind])
    flow = dict(cfg[kind])
    shared = {k: flow.pop(k, cfg[k]) for k in ("batch_size", "learning_rate", "max_epochs")}
    posterior, summary = train_npe(
        theta, x, prior, stop_after_epochs=cfg["stop_after_epochs"], seed=seed, **shared, **flow
    )
    summary["source"], summary["n_simulations"] = source, len(theta)
    if kind == "joint":
        summary["training_prior"] = cfg["joint_prior"]  # the multi-star Gaussian product's prior correction reads it
    return posterior, summary, info["acceptance"]

"""The spectra graph's label posterior: an sbi NPE over theta (:mod:`.parametrisation`) with the label names and
prior box, trained on latents (:func:`train_label_posterior`) and evaluated on a labelled set
(:func:`evaluate_posterior`: point metrics, per-label and joint coverage, SBC ranks).

:class:`SpectraPosterior` bundles the sbi posterior, the parametrisation, the label names and the prior box,
so another process loads one file and samples labels in physical units. Labels the simulations take on a grid
are dequantised for training (:mod:`galaxy_sbi.inference.dequantise`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..inference.calibration import COVERAGE_LEVELS
from ..inference.dequantise import dequantise, grid_values
from ..inference.metrics import point_metrics
from ..inference.npe import box_prior, log_prob, padded_box, sample, save_posterior, train_npe
from .parametrisation import LabelParametrisation, order_violation_fraction

log = logging.getLogger(__name__)


@dataclass
class SpectraPosterior:
    """An sbi posterior over theta plus what is needed to give labels in physical units."""

    posterior: Any
    parametrisation: LabelParametrisation
    low: np.ndarray
    high: np.ndarray
    summary: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    #: theta name -> grid values of the theta components dequantised in training (see :func:`dequantise`)
    grids: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return self.parametrisation.names

    @property
    def conditioning(self) -> list[str]:
        """What the NPE is told beside the latents (:data:`.conditioning.INPUTS`; ``npe.noise.inputs``)."""
        return list(self.info.get("conditioning", []))

    def inputs(self, latents, snr=None, sigma_kms=0.0, blue_mask=False) -> np.ndarray:
        """The NPE's input for the latents of spectra at ``snr`` (a scalar or one per spectrum; None: noise-free),
        broadened to ``sigma_kms``, with the blue end masked or not: the latents, followed by the conditioning
        columns when the posterior was trained with them (an unconditioned posterior ignores the rest)."""
        from .conditioning import with_conditioning

        if not self.conditioning:
            return np.asarray(latents)
        return with_conditioning(latents, self.conditioning, snr, sigma_kms, blue_mask)

    def dequantise_labels(self, labels: np.ndarray, rng) -> np.ndarray:
        """Labels whose dequantised theta components are spread over their grid cells (the truths of a
        calibration test); through theta and back, so linexp's (t0, tau) cells move the nine percentiles."""
        labels = np.array(labels, float)
        if not self.grids:
            return labels
        par = self.parametrisation
        theta = par.to_theta(labels)
        for name, grid in self.grids.items():
            i = par.theta_names.index(name)
            theta[..., i] = dequantise(theta[..., i], grid, rng, strict=False)
        return par.to_labels(theta)

    def sample_theta(self, x, n_samples: int, seed: int = 0, batch: int = 500, on_empty: str = "raise") -> np.ndarray:
        return sample(
            self.posterior,
            x,
            n_samples,
            seed=seed,
            batch=batch,
            support=self.parametrisation.support,
            on_empty=on_empty,
        )

    def sample_labels(self, x, n_samples: int, seed: int = 0, batch: int = 500) -> np.ndarray:
        """Label samples (n_samples, N, n_labels) in physical units."""
        return self.parametrisation.to_labels(self.sample_theta(x, n_samples, seed, batch))

    def training_summary(self, **extra) -> dict:
        """training_{parametrisation}.json: parametrisation, labels, theta, prior box, dequantised grids, losses per epoch."""
        return {
            "parametrisation": self.parametrisation.kind,
            "labels": self.names,
            "theta": self.parametrisation.theta_names,
            "prior_low": np.asarray(self.low).tolist(),
            "prior_high": np.asarray(self.high).tolist(),
            **extra,
            "dequantised": self.info.get("dequantised"),
            **self.summary,
        }

    def save(self, path) -> Path:
        return save_posterior(
            self.posterior,
            path,
            self.summary,
            names=self.names,
            parametrisation=self.parametrisation.kind,
            min_gap=self.parametrisation.min_gap,
            sfh_window=self.parametrisation.sfh_window,
            prior_low=np.asarray(self.low),
            prior_high=np.asarray(self.high),
            info=self.info,
            grids={k: np.asarray(v).tolist() for k, v in self.grids.items()},
            standardisation="sbi z-scoring of theta and x per dimension inside the flow",
        )

    @classmethod
    def load(cls, path) -> SpectraPosterior:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        par = LabelParametrisation(
            blob["parametrisation"], blob["names"], blob.get("min_gap", 1e-3), blob.get("sfh_window")
        )
        return cls(
            blob["posterior"],
            par,
            blob["prior_low"],
            blob["prior_high"],
            blob["summary"],
            blob.get("info", {}),
            {k: np.asarray(v) for k, v in blob.get("grids", {}).items()},
        )


def train_label_posterior(
    labels: np.ndarray,
    x: np.ndarray,
    names,
    settings: dict,
    seed: int = 0,
    validation_groups=None,
    conditioning=(),
    time_range=None,
) -> SpectraPosterior:
    """NPE of the labels given x with the config's ``npe:`` settings.

    Prior: box-uniform in theta over the training range padded by ``settings['prior_padding']`` of the width
    on each side (the padding matters for the naive parametrisation's edges and for the log-gaps' tails).
    The theta components named in ``settings['dequantise']`` (those this parametrisation has) are spread over
    their grid cells, the grid being the values the training set takes. ``validation_groups``: see
    :func:`~galaxy_sbi.inference.npe.train_npe`. ``conditioning``: the names of x's last columns beyond the latents
    (:data:`.conditioning.INPUTS`), kept so that :meth:`SpectraPosterior.inputs` builds them for new spectra.
    ``time_range``: (big bang, t_obs) in the labels' time units; the padded box of the percentiles that theta holds
    as times (naive, ordered: all; log_gaps: t10) stops there, so no sample forms mass before the big bang or
    after the observation."""
    window = settings.get("sfh_window")  # linexp only
    par = LabelParametrisation(settings["parametrisation"], names, sfh_window=tuple(window) if window else None)
    labels = np.asarray(labels, float)
    theta = par.to_theta(labels)
    if par.kind == "linexp":
        # the labels must be those of linear-exponential SFHs: the fitted (t0, tau) give them back
        misfit = float(np.abs(par.to_labels(theta) - labels).max())
        if not misfit < 0.01:
            raise ValueError(
                f"linexp: the training labels are not those of linear-exponential SFHs in the window "
                f"{par.sfh_window} Gyr (max misfit {misfit:.3g} Gyr); use naive or log_gaps"
            )
    grids = {
        n: grid_values(theta[:, par.theta_names.index(n)], name=n)
        for n in settings.get("dequantise", [])
        if n in par.theta_names
    }
    if grids:
        rng = np.random.default_rng(seed)
        for n, g in grids.items():
            log.info("dequantising %s over its %d grid cells (%.4g ... %.4g)", n, len(g), g[0], g[-1])
            i = par.theta_names.index(n)
            theta[:, i] = dequantise(theta[:, i], g, rng)
    low, high = padded_box(theta, settings["prior_padding"])
    if time_range is not None:
        times = {"naive": par.cols, "ordered": par.cols, "log_gaps": par.cols[:1]}.get(par.kind, [])
        low[times] = np.maximum(low[times], time_range[0])
        high[times] = np.minimum(high[times], time_range[1])
    prior = box_prior(low, high)
    posterior, summary = train_npe(
        theta,
        x,
        prior,
        model=settings["model"],
        hidden_features=settings["hidden_features"],
        num_transforms=settings["num_transforms"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        max_epochs=settings["max_epochs"],
        stop_after_epochs=settings["stop_after_epochs"],
        seed=seed,
        validation_fraction=settings["validation_fraction"],
        schedule=settings.get("schedule", "constant"),
        validation_groups=validation_groups,
    )
    info = {
        "n_train": int(len(theta)),
        "theta_names": par.theta_names,
        "prior": f"BoxUniform in theta over the training range padded by {settings['prior_padding']} of the width",
        "settings": dict(settings),
        "dequantised": {n: g.tolist() for n, g in grids.items()},
        "conditioning": list(conditioning),
    }
    return SpectraPosterior(posterior, par, low, high, summary, info, grids)


def evaluate_posterior(
    post: SpectraPosterior,
    x: np.ndarray,
    labels: np.ndarray,
    n_samples: int,
    seed: int = 1000,
    levels=COVERAGE_LEVELS,
    batch: int = 250,
    joint: bool = True,
    keep_samples: bool = False,
    dequantise: bool = True,
    skip_unsupported: bool = False,
) -> dict:
    """Posterior summaries and calibration of a labelled set, processed in batches of observations.

    Returns arrays (mean, std, quantiles 2.5/16/50/84/97.5, SBC ranks, per-label central and joint HPD
    credibility of the truth, and ``calibration_truth``) and the metrics dict (point metrics of the mean,
    coverage per label and joint, order-violation fraction of the samples). Labels the posterior was trained
    dequantised are judged, for calibration only, against truths spread over their grid cells (seeded); the
    point metrics compare the mean with the grid value. ``dequantise=False``: the truths are continuous (an off-grid
    set), judged as they are. ``skip_unsupported``: an observation whose flow puts no sample inside the prior box
    (one unlike the training set, e.g. from another SSP library) is left out of the metrics, its arrays NaN (its
    SBC ranks 0), and counted (``n_without_support``, ``without_support``) instead of stopping the evaluation."""
    from ..inference.calibration import (
        coverage_band,
        credibility_hpd_samples,
        credibility_samples,
        empirical_coverage,
        sbc_ranks_from_samples,
    )

    names = post.names
    x, labels = np.asarray(x), np.asarray(labels, float)
    n, d = labels.shape
    truth = post.dequantise_labels(labels, np.random.default_rng(seed)) if dequantise else labels
    qs = np.array([2.5, 16, 50, 84, 97.5])
    mean, std = np.full((n, d), np.nan), np.full((n, d), np.nan)
    quant = np.full((len(qs), n, d), np.nan)
    ranks, cred, cred_joint = np.zeros((n, d), int), np.full((n, d), np.nan), np.full(n, np.nan)
    supported = np.ones(n, bool)
    n_bad = 0
    kept = []
    on_empty = "nan" if skip_unsupported else "raise"
    for b, i in enumerate(range(0, n, batch)):
        theta = post.sample_theta(x[i : i + batch], n_samples, seed=seed + b, on_empty=on_empty)
        good = np.isfinite(theta).all(axis=(0, 2))
        rows = np.arange(i, i + len(good))
        supported[rows[~good]] = False
        if keep_samples:
            kept.append(np.full((n_samples, len(good), d), np.nan, np.float32))
        if not good.any():
            continue
        sl, theta = rows[good], theta[:, good]
        lab = post.parametrisation.to_labels(theta)
        mean[sl], std[sl] = lab.mean(0), lab.std(0)
        quant[:, sl] = np.percentile(lab, qs, axis=0)
        ranks[sl] = sbc_ranks_from_samples(lab, truth[sl])
        cred[sl] = credibility_samples(lab, truth[sl])
        n_bad += order_violation_fraction(lab, names) * lab.shape[0] * lab.shape[1]
        if joint:
            lq = log_prob(post.posterior, theta, x[sl])
            lq_true = log_prob(post.posterior, post.parametrisation.to_theta(truth[sl])[None], x[sl])[0]
            cred_joint[sl] = credibility_hpd_samples(lq, lq_true)
        if keep_samples:
            kept[-1][:, good] = lab
    metrics = {
        "n_test": int(n),
        "n_samples": int(n_samples),
        "labels": point_metrics(labels[supported], mean[supported], names),
    }
    if skip_unsupported:
        metrics["n_without_support"] = int((~supported).sum())
        metrics["without_support"] = np.flatnonzero(~supported).tolist()
    varying = [i for i in range(d) if np.ptp(labels[:, i]) > 0]
    cov = {names[i]: empirical_coverage(cred[supported, i], levels) for i in varying}
    if joint:
        cov["joint"] = empirical_coverage(cred_joint[supported], levels)
    lo, hi = coverage_band(int(supported.sum()), levels)
    metrics["coverage"] = {
        "levels": [float(v) for v in levels],
        "empirical": {k: [float(v) for v in c] for k, c in cov.items()},
        "max_abs_deviation": {k: float(np.max(np.abs(c - levels))) for k, c in cov.items()},
        "binomial_band_95": {"low": lo.tolist(), "high": hi.tolist()},
        "definition": "per label: central credible interval of the samples; joint: HPD region of the flow density",
    }
    if post.grids and dequantise:
        metrics["coverage"]["dequantised"] = (
            f"{', '.join(post.grids)}: trained spread over their grid cells; "
            "the truths are spread the same way (randomised PIT)"
        )
    metrics["coverage"]["max_abs_deviation_all"] = float(max(metrics["coverage"]["max_abs_deviation"].values()))
    metrics["order_violation_fraction"] = (
        float(n_bad / (supported.sum() * n_samples)) if supported.any() else float("nan")
    )
    metrics["mean_posterior_std"] = {names[i]: float(std[supported, i].mean()) for i in range(d)}
    arrays = {
        "mean": mean,
        "std": std,
        "quantiles": quant,
        "quantile_levels": qs,
        "ranks": ranks,
        "credibility": cred,
        "credibility_joint": cred_joint,
        "coverage": cov,
        "levels": np.asarray(levels),
        "calibration_truth": truth,
    }
    if keep_samples:
        arrays["samples"] = np.concatenate(kept, axis=1) if kept else np.empty((n_samples, 0, d), np.float32)
    return {"metrics": metrics, "arrays": arrays}

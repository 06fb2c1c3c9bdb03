"""Amortised neural posterior estimation (sbi NPE) of labels from summaries (latents), and its parametrisations.

Generic pieces (any theta, any x), signature-compatible with :mod:`galaxy_sbi.chem.npe`:

- :func:`train_npe`: sbi's ``NPE`` with ``posterior_nn(model=maf|nsf, hidden_features, num_transforms)``.
  sbi z-scores theta and x per dimension inside the flow (``z_score_theta = z_score_x = "independent"``,
  the sbi default, made explicit here), so the network always sees standardised inputs; the mean and
  standard deviation are part of the saved network. No ``./sbi-logs`` TensorBoard directory is written: a
  no-op tracker (sbi >= 0.25's ``tracker`` argument) replaces sbi's default TensorBoard writer.
- :func:`sample`: batched direct sampling from the flow, one call per batch of observations; samples that
  leaked outside the prior box are replaced by in-box samples of the same observation (what sbi's rejection
  sampler would return, without its per-observation loop).
- :func:`save_posterior` / :func:`load_posterior`: ``torch.save`` of the sbi posterior plus metadata.

The spectra graph's labels (t10...t90, [M/H], [alpha/Fe]) are sampled through :class:`LabelParametrisation`:

- ``naive``: theta = the labels.
- ``log_gaps`` (order-preserving): theta = (t10, log(t20 - t10), ..., log(t90 - t80), [M/H], [alpha/Fe]);
  every sample maps back to t10 < t20 < ... < t90 by construction. Gaps are floored at ``min_gap`` (1e-3
  Gyr) before the log, so a training SFH with two (numerically) equal percentiles stays finite.
- ``linexp`` (the parametric family only, order-preserving): theta = (t0, log10 tau, [M/H], [alpha/Fe]) of the
  linear-exponential SFH whose percentiles the labels are (fitted from all nine, exact to ~1e-5 Gyr on the
  SFH files' labels); samples map back through the closed-form percentiles. The nine percentiles of this
  family lie on a 2-D surface, so a 10-D flow over them must spread density off it; over (t0, tau) it need not.

:class:`SpectraPosterior` bundles the sbi posterior, the parametrisation, the label names and the prior box,
so another process loads one file and samples labels in physical units.

Labels that the simulations take on a grid ([M/H] and [alpha/Fe] are the cells of ``ssp.interpolate``; linexp's
t0 and tau are the parametric family's grid) are *dequantised* for training (:func:`dequantise`): each value is
spread uniformly over its grid cell (half-way to the neighbours), so the flow learns a density that the data can
pin (the cell) rather than a smoothed spike of arbitrary width. Calibration on a test set with grid-valued truths
then uses the same spreading of the truth (the randomised PIT of a discrete variable, Czado, Gneiting & Held 2009): for a
posterior that puts the right mass on each cell the credibility levels are exactly uniform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

PARAMETRISATIONS = ("naive", "log_gaps", "linexp")


# ---------------------------------------------------------------------------------------------
# sbi plumbing
# ---------------------------------------------------------------------------------------------


class NullTracker:
    """sbi ``Tracker`` that records nothing: keeps sbi from creating ./sbi-logs (TensorBoard) in the cwd."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_params(self, params):
        pass

    def add_figure(self, name, figure, step=None):
        pass

    def flush(self):
        pass


def box_prior(low, high):
    """sbi BoxUniform on [low, high] (float32)."""
    from sbi.utils import BoxUniform

    return BoxUniform(torch.as_tensor(np.asarray(low), dtype=torch.float32),
                      torch.as_tensor(np.asarray(high), dtype=torch.float32))


def padded_box(theta: np.ndarray, pad: float = 0.05, min_width: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Range of the training theta widened by ``pad`` of its width on each side (a constant column by min_width)."""
    theta = np.asarray(theta, float)
    lo, hi = theta.min(0), theta.max(0)
    width = np.maximum(hi - lo, min_width)
    return lo - pad * width, hi + pad * width


def train_npe(theta, x, prior, *, model: str = "maf", hidden_features: int = 8, num_transforms: int = 4,
              batch_size: int = 256, learning_rate: float = 5e-4, max_epochs: int = 200, stop_after_epochs: int = 20,
              seed: int = 0, validation_fraction: float = 0.1, num_bins: int = 10, schedule: str = "constant",
              tracker=None):
    """Train an sbi NPE; returns (posterior, summary with per-epoch losses, epochs, training time).

    ``schedule="constant"``: sbi's own trainer (Adam at ``learning_rate``, early stopping after
    ``stop_after_epochs`` epochs without a better validation loss). ``"onecycle"``: the same flow and loss
    (sbi's ``posterior_nn`` estimator, its ``loss``) under a OneCycle learning-rate schedule over exactly
    ``max_epochs`` epochs with peak ``learning_rate``, keeping the epoch of best validation loss. sbi's trainer
    has no schedule; at a constant rate the flow creeps towards its optimum for hundreds of epochs."""
    import time

    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    kwargs = {"num_bins": num_bins} if model == "nsf" else {}
    estimator = posterior_nn(model=model, hidden_features=hidden_features, num_transforms=num_transforms,
                             z_score_theta="independent", z_score_x="independent", **kwargs)
    theta = torch.as_tensor(np.asarray(theta), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    start = time.perf_counter()
    if schedule == "onecycle":
        net, summary = _train_onecycle(estimator, theta, x, batch_size=batch_size, learning_rate=learning_rate,
                                       epochs=max_epochs, validation_fraction=validation_fraction, seed=seed)
        from sbi.inference.posteriors import DirectPosterior

        posterior = DirectPosterior(posterior_estimator=net, prior=prior)
    elif schedule == "constant":
        inference = NPE(prior=prior, density_estimator=estimator, show_progress_bars=False,
                        tracker=NullTracker() if tracker is None else tracker)
        inference.append_simulations(theta, x)
        net = inference.train(training_batch_size=batch_size, learning_rate=learning_rate,
                              max_num_epochs=max_epochs, stop_after_epochs=stop_after_epochs,
                              validation_fraction=validation_fraction)
        summary = {k: [float(v) for v in vals] for k, vals in inference.summary.items()
                   if k in ("training_loss", "validation_loss")}
        summary["epochs"] = int(inference.epoch)
        posterior = inference.build_posterior(net)
    else:
        raise ValueError(f"unknown NPE schedule {schedule!r}; use constant or onecycle")
    summary["schedule"] = schedule
    summary["training_time_s"] = round(time.perf_counter() - start, 2)
    log.info("NPE (%s, %d features, %d transforms, %s) trained for %d epochs in %.1f s, best validation loss %.4f",
             model, hidden_features, num_transforms, schedule, summary["epochs"], summary["training_time_s"],
             min(summary.get("validation_loss", [np.nan])))
    return posterior, summary


def _train_onecycle(build, theta, x, *, batch_size: int, learning_rate: float, epochs: int,
                    validation_fraction: float, seed: int, clip_max_norm: float = 5.0, log_every: int = 10):
    """Adam + OneCycle over ``epochs`` on sbi's NPE loss (-log q(theta | x)); sbi's validation split and
    gradient clipping. Returns (the network at its best validation epoch, summary)."""
    from copy import deepcopy

    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(theta), generator=gen)
    n_val = int(validation_fraction * len(theta))
    if n_val < 1:
        raise ValueError(f"validation_fraction {validation_fraction} leaves no validation sample of {len(theta)}")
    val, train = perm[:n_val], perm[n_val:]
    net = build(theta[train], x[train])  # z-scoring from the training part, as sbi does
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    steps = -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=epochs * steps)
    summary = {"training_loss": [], "validation_loss": []}
    best, best_state = np.inf, None
    for epoch in range(epochs):
        net.train()
        order = train[torch.randperm(len(train), generator=gen)]
        total = 0.0
        for k in range(steps):
            b = order[k * batch_size:(k + 1) * batch_size]
            loss = net.loss(theta[b], condition=x[b]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_max_norm)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        net.eval()
        with torch.no_grad():
            v = float(torch.cat([net.loss(theta[val[i:i + 4096]], condition=x[val[i:i + 4096]])
                                 for i in range(0, n_val, 4096)]).mean())
        summary["training_loss"].append(total / len(train))
        summary["validation_loss"].append(v)
        if v < best:
            best, best_state = v, deepcopy(net.state_dict())
        if epoch % log_every == 0 or epoch == epochs - 1:
            log.info("epoch %d/%d: training loss %.4f, validation loss %.4f (best %.4f)", epoch + 1, epochs,
                     summary["training_loss"][-1], v, best)
    net.load_state_dict(best_state)
    net.zero_grad(set_to_none=True)
    summary["epochs"] = epochs
    summary["best_epoch"] = int(np.argmin(summary["validation_loss"])) + 1
    return net, summary


def sample(posterior, x, n_samples: int, seed: int = 0, batch: int = 500) -> np.ndarray:
    """Posterior samples (n_samples, N, D) for observations x (N, n_x), float64.

    Drawn from the flow directly (one batched call per ``batch`` observations, no rejection loop); samples
    outside the prior box are replaced by in-box samples of the same observation (resampled), which is what
    rejection would give. Where (almost) all samples of an observation leaked, all are kept."""
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    est = posterior.posterior_estimator
    low, high = posterior.prior.base_dist.low, posterior.prior.base_dist.high
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            s = est.sample((n_samples,), condition=x[i:i + batch])          # (S, B, D)
            inside = ((s >= low) & (s <= high)).all(-1)                     # (S, B)
            w = inside.T.float()
            few = w.sum(1, keepdim=True) < max(2, n_samples // 10)
            w = torch.where(few, torch.ones_like(w), w)
            idx = torch.multinomial(w, n_samples, replacement=True, generator=gen).T  # (S, B)
            out.append(torch.gather(s, 0, idx[..., None].expand_as(s)))
    if not out:
        return np.empty((n_samples, 0, low.numel()))
    return torch.cat(out, dim=1).numpy().astype(np.float64)


def log_prob(posterior, theta, x, batch: int = 256) -> np.ndarray:
    """Flow log density log q(theta[s, i] | x[i]) for theta (S, N, D): (S, N), without the leakage correction."""
    theta = torch.as_tensor(np.asarray(theta), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    est = posterior.posterior_estimator
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(est.log_prob(theta[:, i:i + batch], condition=x[i:i + batch]))
    return torch.cat(out, dim=1).double().numpy()


def log_prob_grid(posterior, x, grid, star_batch: int = 64) -> np.ndarray:
    """Unnormalised NPE log density at grid points (G, D) for each observation: (N, G)."""
    g = torch.as_tensor(np.asarray(grid), dtype=torch.float32)
    theta = g[:, None, :].expand(len(g), len(x), g.shape[1])  # a view: every observation on the same grid
    return log_prob(posterior, theta, x, batch=star_batch).T


def save_posterior(posterior, path, summary=None, **metadata) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save({"posterior": posterior, "summary": summary or {}, **metadata}, tmp)
    tmp.replace(path)
    return path


def load_posterior(path):
    """(posterior, summary) of a file written by :func:`save_posterior` (the chem graph's contract)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["posterior"], blob["summary"]


# ---------------------------------------------------------------------------------------------
# label parametrisations
# ---------------------------------------------------------------------------------------------


def percentile_columns(names) -> list[int]:
    """Columns of the time percentiles t10...t90 among the label names."""
    return [i for i, n in enumerate(names) if str(n).startswith("t") and str(n)[1:].isdigit()]


@dataclass
class LabelParametrisation:
    """Map labels (t10...t90, [M/H], [alpha/Fe]) <-> the flow's theta."""

    kind: str
    names: list[str]
    min_gap: float = 1e-3
    #: linexp only: (start, end) of the SFHs' time window in Gyr (mass formed between them; the end is t_obs)
    sfh_window: tuple[float, float] | None = None

    def __post_init__(self):
        if self.kind not in PARAMETRISATIONS:
            raise ValueError(f"unknown parametrisation {self.kind!r} (one of {PARAMETRISATIONS})")
        self.names = [str(n) for n in self.names]
        self.cols = percentile_columns(self.names)
        if self.kind in ("log_gaps", "linexp") and self.cols != list(range(self.cols[0], self.cols[0] + len(self.cols))):
            raise ValueError(f"{self.kind} needs the percentile columns to be contiguous")
        if self.kind == "linexp" and self.sfh_window is None:
            raise ValueError("linexp needs sfh_window = (start, t_obs) of the linear-exponential SFHs")
        self.percentiles = [float(self.names[c][1:]) for c in self.cols]

    @property
    def theta_names(self) -> list[str]:
        if self.kind == "naive":
            return list(self.names)
        if self.kind == "linexp":
            c = self.cols
            return self.names[:c[0]] + ["t0", "log10_tau"] + self.names[c[-1] + 1:]
        out = list(self.names)
        for a, b in zip(self.cols[:-1], self.cols[1:]):
            out[b] = f"log({self.names[b]}-{self.names[a]})"
        return out

    def to_theta(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, float)
        if self.kind == "naive":
            return labels.copy()
        if self.kind == "linexp":
            from ..spectra.sfh import linexp_parameters

            c = self.cols
            flat = labels.reshape(-1, labels.shape[-1])
            t0, tau = linexp_parameters(flat[:, c], *self.sfh_window, self.percentiles)
            theta = np.concatenate([flat[:, :c[0]], t0[:, None], np.log10(tau)[:, None], flat[:, c[-1] + 1:]], 1)
            return theta.reshape(labels.shape[:-1] + (theta.shape[-1],))
        theta = labels.copy()
        t = labels[..., self.cols]
        theta[..., self.cols[1:]] = np.log(np.maximum(np.diff(t, axis=-1), self.min_gap))
        return theta

    def to_labels(self, theta: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        theta = np.asarray(theta, float)
        if self.kind == "naive":
            return theta.copy()
        if self.kind == "linexp":
            from ..spectra.sfh import linexp_percentiles

            c0 = self.cols[0]
            flat = theta.reshape(-1, theta.shape[-1])
            perc = np.concatenate([linexp_percentiles(flat[i:i + chunk, c0], 10.0 ** flat[i:i + chunk, c0 + 1],
                                                      *self.sfh_window, self.percentiles)
                                   for i in range(0, len(flat), chunk)]) if len(flat) else np.zeros((0, len(self.cols)))
            labels = np.concatenate([flat[:, :c0], perc, flat[:, c0 + 2:]], 1)
            return labels.reshape(theta.shape[:-1] + (labels.shape[-1],))
        labels = theta.copy()
        first = theta[..., self.cols[0]:self.cols[0] + 1]
        gaps = np.exp(np.clip(theta[..., self.cols[1:]], -50, 10))
        labels[..., self.cols] = np.concatenate([first, first + np.cumsum(gaps, axis=-1)], axis=-1)
        return labels


def grid_cells(grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted grid values and the (low, high) edges of their cells: half-way to the neighbours; an end cell
    reaches as far out as it reaches in (a one-value grid gets a zero-width cell)."""
    g = np.unique(np.asarray(grid, float))
    mid = 0.5 * (g[1:] + g[:-1])
    if len(g) == 1:
        return g, g.copy(), g.copy()
    low = np.concatenate([[g[0] - (mid[0] - g[0])], mid])
    high = np.concatenate([mid, [g[-1] + (g[-1] - mid[-1])]])
    return g, low, high


#: values closer than this fraction of the grid's range are one grid node (grid_values merges, dequantise matches)
GRID_REL_TOL = 1e-4


def grid_values(values, rel_tol: float = GRID_REL_TOL, name: str = "these values") -> np.ndarray:
    """The grid a set of values lies on: sorted distinct values, values closer than ``rel_tol`` of the range merged
    (their mean), so fitted values (linexp's t0 and tau, exact to ~1e-5) find their node. Refuses values that are
    not grid-valued (more than half of them distinct)."""
    v = np.sort(np.asarray(values, float).ravel())
    tol = rel_tol * max(float(np.ptp(v)), 1e-12)
    breaks = np.flatnonzero(np.diff(v) > tol) + 1
    grid = np.array([c.mean() for c in np.split(v, breaks)])
    if len(grid) > max(len(v) // 2, 1):
        raise ValueError(f"dequantise: {name} takes {len(grid)} distinct values among {len(v)}, not a grid; "
                         f"leave it out of npe.dequantise")
    return grid


def dequantise(values, grid, rng, atol: float | None = None, strict: bool = True) -> np.ndarray:
    """Each grid value spread uniformly over its cell (:func:`grid_cells`); any shape. A value off the grid is
    refused (``strict``) or spread over a cell of its nearest node's width centred on itself (a test case whose
    node the training set never took)."""
    values = np.asarray(values, float)
    g, low, high = grid_cells(grid)
    if atol is None:  # what grid_values merges
        atol = GRID_REL_TOL * max(float(np.ptp(g)), 1e-12) + 1e-12
    idx = np.clip(np.searchsorted(g, values), 0, len(g) - 1)
    idx = np.where(np.abs(g[np.maximum(idx - 1, 0)] - values) < np.abs(g[idx] - values), np.maximum(idx - 1, 0), idx)
    off = np.abs(g[idx] - values) > atol
    if off.any() and strict:
        raise ValueError(f"dequantise: {int(off.sum())} values are not on the grid {g.tolist()} "
                         f"(e.g. {values[off].ravel()[0]:.4g})")
    if off.any():
        log.warning("dequantise: %d values off the training grid, each spread over its nearest cell's width",
                    int(off.sum()))
    width = high[idx] - low[idx]
    start = np.where(off, values - 0.5 * width, low[idx])
    return start + width * rng.uniform(size=values.shape)


def order_violation_fraction(labels: np.ndarray, names) -> float:
    """Fraction of label vectors (any leading shape) whose percentiles are not strictly increasing."""
    t = np.asarray(labels)[..., percentile_columns(names)]
    return float(np.any(np.diff(t, axis=-1) <= 0, axis=-1).mean())


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

    def sample_theta(self, x, n_samples: int, seed: int = 0, batch: int = 500) -> np.ndarray:
        return sample(self.posterior, x, n_samples, seed=seed, batch=batch)

    def sample_labels(self, x, n_samples: int, seed: int = 0, batch: int = 500) -> np.ndarray:
        """Label samples (n_samples, N, n_labels) in physical units."""
        return self.parametrisation.to_labels(self.sample_theta(x, n_samples, seed, batch))

    def save(self, path) -> Path:
        return save_posterior(self.posterior, path, self.summary, names=self.names,
                              parametrisation=self.parametrisation.kind, min_gap=self.parametrisation.min_gap,
                              sfh_window=self.parametrisation.sfh_window,
                              prior_low=np.asarray(self.low), prior_high=np.asarray(self.high), info=self.info,
                              grids={k: np.asarray(v).tolist() for k, v in self.grids.items()},
                              standardisation="sbi z-scoring of theta and x per dimension inside the flow")

    @classmethod
    def load(cls, path) -> SpectraPosterior:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        par = LabelParametrisation(blob["parametrisation"], blob["names"], blob.get("min_gap", 1e-3),
                                   blob.get("sfh_window"))
        return cls(blob["posterior"], par, blob["prior_low"], blob["prior_high"], blob["summary"], blob.get("info", {}),
                   {k: np.asarray(v) for k, v in blob.get("grids", {}).items()})


def train_label_posterior(labels: np.ndarray, x: np.ndarray, names, settings: dict, seed: int = 0) -> SpectraPosterior:
    """NPE of the labels given x with the config's ``npe:`` settings.

    Prior: box-uniform in theta over the training range padded by ``settings['prior_padding']`` of the width
    on each side (the padding matters for the naive parametrisation's edges and for the log-gaps' tails).
    The theta components named in ``settings['dequantise']`` (those this parametrisation has) are spread over
    their grid cells, the grid being the values the training set takes."""
    par = LabelParametrisation(settings["parametrisation"], names, sfh_window=settings.get("sfh_window"))
    labels = np.asarray(labels, float)
    theta = par.to_theta(labels)
    if par.kind == "linexp":
        # the labels must be those of linear-exponential SFHs: the fitted (t0, tau) give them back
        misfit = float(np.abs(par.to_labels(theta) - labels).max())
        if not misfit < 0.01:
            raise ValueError(f"linexp: the training labels are not those of linear-exponential SFHs in the window "
                             f"{par.sfh_window} Gyr (max misfit {misfit:.3g} Gyr); use naive or log_gaps")
    grids = {n: grid_values(theta[:, par.theta_names.index(n)], name=n) for n in settings.get("dequantise", [])
             if n in par.theta_names}
    if grids:
        rng = np.random.default_rng(seed)
        for n, g in grids.items():
            log.info("dequantising %s over its %d grid cells (%.4g ... %.4g)", n, len(g), g[0], g[-1])
            i = par.theta_names.index(n)
            theta[:, i] = dequantise(theta[:, i], g, rng)
    low, high = padded_box(theta, settings["prior_padding"])
    prior = box_prior(low, high)
    posterior, summary = train_npe(
        theta, x, prior, model=settings["model"], hidden_features=settings["hidden_features"],
        num_transforms=settings["num_transforms"], batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"], max_epochs=settings["max_epochs"],
        stop_after_epochs=settings["stop_after_epochs"], seed=seed,
        validation_fraction=settings["validation_fraction"], schedule=settings.get("schedule", "constant"))
    info = {"n_train": int(len(theta)), "theta_names": par.theta_names,
            "prior": f"BoxUniform in theta over the training range padded by {settings['prior_padding']} of the width",
            "settings": dict(settings), "dequantised": {n: g.tolist() for n, g in grids.items()}}
    return SpectraPosterior(posterior, par, low, high, summary, info, grids)


# ---------------------------------------------------------------------------------------------
# evaluation on a labelled set (the test split)
# ---------------------------------------------------------------------------------------------

COVERAGE_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)


def point_metrics(true: np.ndarray, pred: np.ndarray, names) -> dict:
    """Per label: R^2, bias (median residual), scatter (1.4826 MAD = sigma_NMAD), RMSE, outlier fraction.

    Residual = pred - true. Outlier: |residual - bias| > 3 sigma_NMAD (for Gaussian residuals 0.27 %)."""
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    out = {}
    for i, name in enumerate(names):
        d = pred[:, i] - true[:, i]
        ss_tot = np.sum((true[:, i] - true[:, i].mean()) ** 2)
        r2 = 1.0 - np.sum(d**2) / ss_tot if ss_tot > 0 else float("nan")
        bias = float(np.median(d))
        nmad = float(1.4826 * np.median(np.abs(d - bias)))
        out[str(name)] = {"r2": float(r2), "bias": bias, "scatter_nmad": nmad, "rmse": float(np.sqrt(np.mean(d**2))),
                          "outlier_fraction": float(np.mean(np.abs(d - bias) > 3 * nmad)) if nmad > 0 else 0.0}
    return out


def evaluate_posterior(post: SpectraPosterior, x: np.ndarray, labels: np.ndarray, n_samples: int, seed: int = 1000,
                       levels=COVERAGE_LEVELS, batch: int = 250, joint: bool = True, keep_samples: bool = False) -> dict:
    """Posterior summaries and calibration of a labelled set, processed in batches of observations.

    Returns arrays (mean, std, quantiles 2.5/16/50/84/97.5, SBC ranks, per-label central and joint HPD
    credibility of the truth, and ``calibration_truth``) and the metrics dict (point metrics of the mean,
    coverage per label and joint, order-violation fraction of the samples). Labels the posterior was trained
    dequantised are judged, for calibration only, against truths spread over their grid cells (seeded); the
    point metrics compare the mean with the grid value."""
    from .calibration import (coverage_band, credibility_hpd_samples, credibility_samples, empirical_coverage,
                              sbc_ranks_from_samples)

    names = post.names
    x, labels = np.asarray(x), np.asarray(labels, float)
    n, d = labels.shape
    truth = post.dequantise_labels(labels, np.random.default_rng(seed))
    qs = np.array([2.5, 16, 50, 84, 97.5])
    mean, std = np.empty((n, d)), np.empty((n, d))
    quant = np.empty((len(qs), n, d))
    ranks, cred, cred_joint = np.empty((n, d), int), np.empty((n, d)), np.full(n, np.nan)
    n_bad = 0
    kept = []
    for b, i in enumerate(range(0, n, batch)):
        sl = slice(i, i + batch)
        theta = post.sample_theta(x[sl], n_samples, seed=seed + b)
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
            kept.append(lab.astype(np.float32))
    metrics = {"n_test": int(n), "n_samples": int(n_samples), "labels": point_metrics(labels, mean, names)}
    varying = [i for i in range(d) if np.ptp(labels[:, i]) > 0]
    cov = {names[i]: empirical_coverage(cred[:, i], levels) for i in varying}
    if joint:
        cov["joint"] = empirical_coverage(cred_joint, levels)
    lo, hi = coverage_band(n, levels)
    metrics["coverage"] = {
        "levels": [float(v) for v in levels],
        "empirical": {k: [float(v) for v in c] for k, c in cov.items()},
        "max_abs_deviation": {k: float(np.max(np.abs(c - levels))) for k, c in cov.items()},
        "binomial_band_95": {"low": lo.tolist(), "high": hi.tolist()},
        "definition": "per label: central credible interval of the samples; joint: HPD region of the flow density",
    }
    if post.grids:
        metrics["coverage"]["dequantised"] = (f"{', '.join(post.grids)}: trained spread over their grid cells; "
                                              "the truths are spread the same way (randomised PIT)")
    metrics["coverage"]["max_abs_deviation_all"] = float(max(metrics["coverage"]["max_abs_deviation"].values()))
    metrics["order_violation_fraction"] = float(n_bad / (n * n_samples)) if n else float("nan")
    metrics["mean_posterior_std"] = {names[i]: float(std[:, i].mean()) for i in range(d)}
    arrays = {"mean": mean, "std": std, "quantiles": quant, "quantile_levels": qs, "ranks": ranks,
              "credibility": cred, "credibility_joint": cred_joint, "coverage": cov, "levels": np.asarray(levels),
              "calibration_truth": truth}
    if keep_samples:
        arrays["samples"] = np.concatenate(kept, axis=1) if kept else np.empty((n_samples, 0, d), np.float32)
    return {"metrics": metrics, "arrays": arrays}

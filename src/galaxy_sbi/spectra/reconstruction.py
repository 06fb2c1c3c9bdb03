"""Spectrum reconstruction from inferred labels (seed section 7): the check a user has where no truth exists.

percentiles t10...t90 (+ [M/H], [alpha/Fe])
  -> cumulative formed-mass curve on the family's time grid: piecewise linear through (t_0, 0) and
     (t_k, k/10), with t_0 continuing the t10-t20 slope, and an exponentially declining tail after t90 that
     reaches 1 at t_obs (see :func:`cumulative_from_percentiles`, ``ends``). Piecewise linear is monotone by construction (PCHIP would also be, but
     its smoothness is not information the nine percentiles carry, and linear keeps the curve's
     percentiles exactly equal to the inputs). Inputs are made non-decreasing first (running maximum)
     and clipped to [t_start, t_obs];
  -> SFH: its derivative (piecewise constant: mass fraction per Gyr in each segment);
  -> mass weights on the native SSP ages (galaxy_sbi.spectra.synth.native_weights, the same folded forward
     model as the training cubes);
  -> spectrum = weights @ SSPs at the inferred [M/H] (and [alpha/Fe]): the SSP grid is interpolated
     linearly between its two bracketing nodes, as galaxy_sbi.spectra.ssp.interpolate_library does
     (clamped at the grid's edges), then median-normalised like the cubes.

:func:`residual_rms` compares an input spectrum (synthetic or observed, on the model's wavelength grid) with
its reconstruction over the good pixels of an optional mask, both normalised by their median over those
pixels: rms in units of the median flux.

Tolerance of the approximation itself (tests/test_reconstruction.py): reconstructing a parametric SFH's
spectrum from its *true* percentiles (a 9-point approximation of the true cumulative curve) returns the
input spectrum to an rms below 2 % of the median flux (measured there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .synth import median_rows, native_weights

QUANTILES = np.arange(1, 10) / 10.0


def cumulative_from_percentiles(
    time_gyr: np.ndarray,
    percentiles: np.ndarray,
    quantiles: Sequence[float] = QUANTILES,
    t_start: float | None = None,
    t_obs: float | None = None,
    ends: str = "extrapolate",
) -> np.ndarray:
    """Monotone cumulative mass fraction (N, n_time) on ``time_gyr`` from percentile times (N, 9) (or (9,)).

    ends: how the curve starts and ends outside (t10, t90). "grid": linear from (t_start, 0) and to
    (t_obs, 1): the last 10 % of the mass spread evenly up to the observation. "extrapolate" (default):
    the start continues the t10-t20 slope back to t10 - (t20 - t10) (clipped to t_start); after t90 the
    formation rate starts at the mean t80-t90 rate r = 0.1 / (t90 - t80) and decays exponentially with the
    e-folding time (t90 - t80), rescaled so that the curve reaches 1 exactly at t_obs:
    C(t) = 0.9 + 0.1 (1 - exp(-(t - t90)/tau)) / (1 - exp(-(t_obs - t90)/tau)), monotone; it tends to the
    linear "grid" tail when t_obs - t90 << tau (still rising SFHs). The tail matters most because young
    stars dominate the blue light: from the true percentiles of the parametric family the median rms is
    7 % with "grid" and ~1 % with "extrapolate" (measured in tests/test_reconstruction.py).
    """
    t = np.asarray(time_gyr, float)
    t_start = t[0] if t_start is None else t_start
    t_obs = t[-1] if t_obs is None else t_obs
    p = np.atleast_2d(np.asarray(percentiles, float))
    p = np.maximum.accumulate(np.clip(p, t_start, t_obs), axis=-1)
    q = np.concatenate([[0.0], np.asarray(quantiles, float), [1.0]])
    if ends == "extrapolate":
        first = np.clip(p[:, 0] - (p[:, 1] - p[:, 0]) * q[1] / (q[2] - q[1]), t_start, t_obs)
    elif ends == "grid":
        first = np.full(len(p), t_start)
    else:
        raise ValueError(f"unknown ends {ends!r} (extrapolate or grid)")
    eps = 1e-9 * (t_obs - t_start)
    cum = np.empty((len(p), len(t)))
    for i, row in enumerate(p):
        knots = np.concatenate([[first[i]], row, [t_obs]])
        knots = knots + eps * np.arange(len(knots))  # strictly increasing for np.interp (ties: a step)
        cum[i] = np.interp(t, knots, q, left=0.0, right=1.0)
        if ends == "extrapolate" and row[-1] < t_obs:
            tau = max(row[-1] - row[-2], 1e-3 * (t_obs - t_start))  # e-folding time: the t80-t90 gap
            late = t > row[-1]
            span = -np.expm1(-(t_obs - row[-1]) / tau)
            cum[i, late] = q[-2] + (1 - q[-2]) * -np.expm1(-(t[late] - row[-1]) / tau) / span
    cum[:, -1] = 1.0
    return cum if np.ndim(percentiles) > 1 else cum[0]


def sfh_from_cumulative(time_gyr: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, mass fraction formed per Gyr in each bin): the derivative of the cumulative curve."""
    t = np.asarray(time_gyr, float)
    return 0.5 * (t[1:] + t[:-1]), np.diff(np.asarray(cumulative, float), axis=-1) / np.diff(t)


def _axis_weights(grid_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(N, n_grid) linear-interpolation weights of ``values`` on a sorted grid, clamped at the edges."""
    g = np.asarray(grid_values, float)
    v = np.clip(np.asarray(values, float), g[0], g[-1])
    w = np.zeros((len(v), len(g)))
    if len(g) == 1:
        w[:, 0] = 1.0
        return w
    k = np.clip(np.searchsorted(g, v, side="right") - 1, 0, len(g) - 2)
    f = (v - g[k]) / (g[k + 1] - g[k])
    rows = np.arange(len(v))
    w[rows, k] = 1.0 - f
    w[rows, k + 1] += f
    return w


class Reconstructor:
    """Forward model from labels: holds the SSP grid (ssp_grid.nc) and the family's time grid."""

    def __init__(
        self,
        ssp_grid: xr.Dataset,
        time_gyr: np.ndarray,
        t_obs: float | None = None,
        normalise: str = "median",
        ends: str = "extrapolate",
    ):
        self.ends = ends
        flux = ssp_grid["flux"]
        self.has_alpha = "alpha" in flux.dims
        order = (
            ("metallicity", "alpha", "age", "wavelength") if self.has_alpha else ("metallicity", "age", "wavelength")
        )
        self.ssps = np.asarray(flux.transpose(*order).values, np.float64)
        self.metallicities = ssp_grid["metallicity"].values.astype(float)
        self.alphas = ssp_grid["alpha"].values.astype(float) if self.has_alpha else None
        self.ages = ssp_grid["age"].values.astype(float)
        self.wavelength = ssp_grid["wavelength"].values.astype(float)
        self.time = np.asarray(time_gyr, float)
        self.t_obs = float(self.time[-1] if t_obs is None else t_obs)
        self.normalise = normalise

    @classmethod
    def from_files(cls, ssp_grid_path, sfh_path, normalise: str = "median", ends: str = "extrapolate") -> Reconstructor:
        with xr.open_dataset(sfh_path) as sfh:
            time, t_obs = sfh["time"].values.copy(), float(sfh.attrs["t_obs_gyr"])
        with xr.open_dataset(ssp_grid_path) as grid:
            grid = grid.load()
        return cls(grid, time, t_obs, normalise, ends)

    def weights(self, percentiles: np.ndarray) -> np.ndarray:
        """Native-age mass weights (N, n_age) of the piecewise-linear cumulative curves."""
        cum = np.atleast_2d(cumulative_from_percentiles(self.time, percentiles, t_obs=self.t_obs, ends=self.ends))
        return native_weights(self.time, cum, self.ages, self.t_obs)[0]

    def spectra(self, percentiles: np.ndarray, metallicity: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """Median-normalised spectra (N, n_wavelength) float64 for labels (N, 9), (N,), (N,)."""
        W = self.weights(percentiles)
        n = len(W)
        wm = _axis_weights(self.metallicities, np.broadcast_to(np.asarray(metallicity, float), (n,)))
        if self.has_alpha:
            a = np.zeros(n) if alpha is None else np.broadcast_to(np.asarray(alpha, float), (n,))
            wa = _axis_weights(self.alphas, a)
        out = np.zeros((n, len(self.wavelength)))
        for m in np.flatnonzero(wm.any(0)):
            if self.has_alpha:
                for j in np.flatnonzero(wa.any(0)):
                    rows = np.flatnonzero(wm[:, m] * wa[:, j])
                    if len(rows):
                        out[rows] += (wm[rows, m] * wa[rows, j])[:, None] * (W[rows] @ self.ssps[m, j])
            else:
                rows = np.flatnonzero(wm[:, m])
                out[rows] += wm[rows, m, None] * (W[rows] @ self.ssps[m])
        if self.normalise == "median":
            out /= median_rows(out)[:, None]
        return out

    def from_labels(self, labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Spectra from label vectors (N, n_labels) named like the posterior's labels."""
        names = [str(n) for n in names]
        labels = np.atleast_2d(np.asarray(labels, float))
        cols = [i for i, n in enumerate(names) if n.startswith("t") and n[1:].isdigit()]
        met = labels[:, names.index("metallicity")]
        alpha = labels[:, names.index("alpha")] if "alpha" in names else None
        return self.spectra(labels[:, cols], met, alpha)

    def band_from_samples(self, samples: np.ndarray, names: Sequence[str], q=(16, 84)) -> np.ndarray:
        """Pixel-wise percentiles (len(q), n_wavelength) of the spectra of label samples (S, n_labels)."""
        return np.percentile(self.from_labels(samples, names), q, axis=0)


def residual_rms(observed: np.ndarray, model: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """rms of (observed - model) over good pixels (mask True = good), both divided by their median there.

    observed, model (N, n_wavelength) or (n_wavelength,); returns (N,) or a scalar, in units of the median flux."""
    obs, mod = np.atleast_2d(np.asarray(observed, float)), np.atleast_2d(np.asarray(model, float))
    good = np.ones(obs.shape[-1], bool) if mask is None else np.asarray(mask, bool)
    if good.ndim == 1:
        good = np.broadcast_to(good, obs.shape)
    out = np.empty(len(obs))
    for i in range(len(obs)):
        o, m = obs[i, good[i]], mod[i, good[i]]
        out[i] = np.sqrt(np.mean((o / np.median(o) - m / np.median(m)) ** 2))
    return out if np.ndim(observed) > 1 else out[0]


def reconstruct_observed(
    reconstructor: Reconstructor,
    flux: np.ndarray,
    label_samples: np.ndarray,
    names,
    mask: np.ndarray | None = None,
    band_q=(16, 84),
) -> dict:
    """Reconstruction of one spectrum (synthetic or observed, on the model grid) from its posterior samples.

    Returns the reconstruction from the posterior mean labels, the band from the samples' spectra (rescaled to
    the input's median over good pixels) and the residual rms over good pixels."""
    flux = np.asarray(flux, float)
    good = np.ones(flux.shape[-1], bool) if mask is None else np.asarray(mask, bool)
    mean_labels = np.asarray(label_samples, float).mean(0)
    model = reconstructor.from_labels(mean_labels[None], names)[0]
    band = reconstructor.band_from_samples(label_samples, names, band_q)
    scale = np.median(flux[good]) / np.median(model[good])
    return {
        "model": model * scale,
        "band": band * np.median(flux[good]) / np.median(band[:, good], axis=1)[:, None],
        "rms": float(residual_rms(flux, model, good)),
        "mean_labels": mean_labels,
    }


def reconstruct_test_split(post, x, labels, flux, rec: Reconstructor, n_samples: int, n_plot: int, seed: int) -> dict:
    """Test spectra rebuilt from the posterior mean labels (and, for ``n_plot`` of them picked by seed, the credible
    band from the samples): residual rms per spectrum against the rms of the true labels' rebuild.

    Returns dict(summary: reconstruction.json's numbers, rms, rms_true, examples: for the plot)."""
    names = post.names
    samples = post.sample_labels(post.inputs(x), n_samples, seed=seed)  # (S, N, D); the test spectra are noise-free
    mean_labels = samples.mean(0)
    rms = residual_rms(flux, rec.from_labels(mean_labels, names))
    rms_true = residual_rms(flux, rec.from_labels(labels, names))
    pick = np.sort(np.random.default_rng(seed).choice(len(x), min(n_plot, len(x)), replace=False))
    t, met = names.index("t50"), names.index("metallicity")
    examples = []
    for i in pick:
        r = reconstruct_observed(rec, flux[i], samples[:, i], names)
        examples.append(
            {
                "flux": flux[i],
                "model": r["model"],
                "band": r["band"],
                "text": f"t50 {labels[i, t]:.2f} → {mean_labels[i, t]:.2f} Gyr, [M/H] {labels[i, met]:+.2f} → "
                f"{mean_labels[i, met]:+.2f}; rms {100 * r['rms']:.2f} %",
            }
        )
    q = [50, 90, 99]
    summary = {
        "n_test": int(len(x)),
        "n_samples": n_samples,
        "rms_units": "fraction of the median flux",
        "rms_posterior_mean": {
            "median": float(np.median(rms)),
            **{f"p{p}": float(np.percentile(rms, p)) for p in q},
            "mean": float(rms.mean()),
        },
        "rms_true_percentiles": {
            "median": float(np.median(rms_true)),
            **{f"p{p}": float(np.percentile(rms_true, p)) for p in q},
        },
        "rms_per_spectrum": rms.tolist(),
    }
    return {"summary": summary, "rms": rms, "rms_true": rms_true, "examples": examples}

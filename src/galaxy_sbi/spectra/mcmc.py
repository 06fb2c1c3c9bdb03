"""The MCMC baseline of the spectra graph: emcee on the project's own forward model of a linear-exponential SFH.

The model is the one that made the training spectra (``synth.native_weights`` + ``synth.forward``), taken off the
lattice: (t0, tau) continuous through the closed-form cumulative mass (``sfh.linexp_cumulative``) and [M/H]
continuous between the SSP grid's metallicities (linear in [M/H], as ``ssp.interpolate_library`` builds the
grid), the spectrum divided by its median as in the cubes; the likelihood marginalises over its normalisation.
One call is a (n_time x n_age) fold of the mass weights and two (n_age x n_wavelength) products; the
interpolation matrix is built once.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ..inference.mcmc import emcee_moves, run_to_convergence
from .sfh import linexp_cumulative, linexp_percentiles
from .synth import bin_ages, interpolation_matrix, median_rows

#: the parameters emcee samples
PARAMETERS = ("t0", "log10_tau", "metallicity")


class LinexpSpectrumModel:
    """Median-normalised spectrum of a linear-exponential SFH at any (t0, log10 tau, [M/H]).

    ``ssp_flux`` (n_metallicity, n_age, n_wavelength) per unit mass formed on ``metallicities`` x ``ages``
    (``results/ssp/ssp_grid.nc``); ``time_gyr`` the SFH time grid, observed at ``t_obs``.
    """

    def __init__(self, ssp_flux, metallicities, ages, time_gyr, t_obs: float, t_start: float = 0.0):
        self.ssp = np.asarray(ssp_flux, float)
        self.metallicities = np.asarray(metallicities, float)
        self.time = np.asarray(time_gyr, float)
        self.t_obs, self.t_start = float(t_obs), float(t_start)
        self.fold = interpolation_matrix(bin_ages(self.time, self.t_obs), np.asarray(ages, float))[0]
        self.n_calls = 0

    @classmethod
    def from_grid(cls, grid, sfh_time_gyr: dict):
        """From the xarray SSP grid and the config's ``sfh.parametric.time_gyr`` {start, stop, step}."""
        from .sfh import linear_grid

        flux = grid["flux"].transpose("metallicity", "age", "wavelength")
        t = linear_grid(**sfh_time_gyr)
        return cls(flux.values, grid["metallicity"].values, grid["age"].values, t, t[-1], t[0])

    def broadened(self, wavelength, sigma_kms) -> LinexpSpectrumModel:
        """The same model with every SSP convolved by a Gaussian of ``sigma_kms`` (a constant or one per pixel of
        ``wavelength``; ``matched.broaden_varying``): broadening is linear, so a spectrum of the broadened basis is
        the broadened spectrum, at the cost of one convolution of the basis instead of one per call."""
        from .matched import broaden_varying

        out = copy.copy(self)
        shape = self.ssp.shape
        sigma = np.broadcast_to(np.asarray(sigma_kms, float), (shape[-1],))
        out.ssp = broaden_varying(self.ssp.reshape(-1, shape[-1]), wavelength, sigma).reshape(shape)
        out.n_calls = 0
        return out

    def weights(self, t0: float, tau: float) -> np.ndarray:
        """Mass weights on the native SSP ages (sum one)."""
        cum = linexp_cumulative(self.time, np.array([t0]), np.array([tau]))[0]
        dm = np.diff(cum)
        total = cum[-1] - cum[0]
        return (dm / total) @ self.fold if total > 0 else np.full(self.fold.shape[1], np.nan)

    def __call__(self, theta) -> np.ndarray:
        t0, log10_tau, mh = (float(v) for v in theta)
        self.n_calls += 1
        w = self.weights(t0, 10.0**log10_tau)
        z = self.metallicities
        k = int(np.clip(np.searchsorted(z, mh, side="right") - 1, 0, len(z) - 2))
        f = (mh - z[k]) / (z[k + 1] - z[k])
        spec = (1.0 - f) * (w @ self.ssp[k]) + f * (w @ self.ssp[k + 1])
        return spec / median_rows(spec)

    def labels(self, t0, log10_tau, mh, percentiles) -> np.ndarray:
        """(n, n_percentiles + 1): the percentile times and [M/H] of parameter samples."""
        t = linexp_percentiles(t0, 10.0 ** np.asarray(log10_tau), self.t_start, self.t_obs, percentiles)
        return np.column_stack([t, np.asarray(mh, float)])


def log_probability(theta, model: LinexpSpectrumModel, flux, sigma, low, high) -> float:
    """Gaussian likelihood at the spectrum's noise (a constant or one per pixel), marginalised over a free
    normalisation of the model (flat prior), and a uniform prior on the box [low, high]. The normalisation is free
    because a noisy spectrum divided by its own median (as observations and the baselines' test spectra are) is
    off the noiseless one's scale by ~0.1 % at S/N 100: with the scale fixed that alone moved chi^2 at the truth by
    up to 126 on 4,300 pixels and emcee's 68 % intervals held 27 % of the truths (392597e)."""
    theta = np.asarray(theta)
    if np.any(theta < low) or np.any(theta > high):
        return -np.inf
    f, m = flux / sigma, model(theta) / sigma
    mm, fm = float(m @ m), float(f @ m)
    # -chi^2_min / 2 at the best scale fm / mm, and the Gaussian integral over the scale: -log(mm) / 2
    return -0.5 * (float(f @ f) - fm * fm / mm) - 0.5 * np.log(mm)


def _start(model, flux, sigma, low, high, rng, n_starts: int):
    """The best of a few Nelder-Mead runs from prior draws: where the walkers start (a small ball around it)."""
    from scipy.optimize import minimize

    best = None
    for x0 in rng.uniform(low, high, (n_starts, len(low))):
        res = minimize(
            lambda th: -log_probability(th, model, flux, sigma, low, high) if np.all(np.isfinite(th)) else np.inf,
            x0,
            method="Nelder-Mead",
            options={"xatol": 1e-4, "fatol": 1e-3, "maxfev": 600},
        )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    return best.x


def fit_emcee(
    flux,
    sigma,
    model: LinexpSpectrumModel,
    low,
    high,
    *,
    seed: int,
    n_walkers: int = 24,
    chunk: int = 500,
    max_steps: int = 20000,
    min_tau_multiples: float = 50.0,
    n_starts: int = 4,
    moves: str = "de",
) -> dict:
    """emcee run to convergence by its integrated autocorrelation time: ``min_tau_multiples`` x the largest tau
    after a burn-in of 5 tau (``get_autocorr_time(tol=0)``, re-estimated every ``chunk`` steps; burn-in discarded),
    thinned by tau / 2. ``moves``: ``de`` (emcee's differential-evolution mixture, DEMove 0.8 + DESnookerMove
    0.2: on the t0 - tau degeneracy its tau is ~3.6x shorter than the default stretch move's, measured on the
    test model at S/N 20: 51 against 185 steps) or ``stretch``. Returns the flat samples, tau, steps, wall time,
    likelihood calls and convergence."""
    import emcee

    low, high = np.asarray(low, float), np.asarray(high, float)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    calls0 = model.n_calls
    centre = _start(model, flux, sigma, low, high, rng, n_starts)
    width = 1e-3 * (high - low)
    p0 = np.clip(centre + width * rng.standard_normal((n_walkers, len(low))), low, high)
    sampler = emcee.EnsembleSampler(
        n_walkers, len(low), log_probability, args=(model, flux, sigma, low, high), moves=emcee_moves(moves)
    )
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()  # emcee's public seed
    run = run_to_convergence(sampler, p0, chunk=chunk, max_steps=max_steps, min_tau_multiples=min_tau_multiples)
    tau, converged = run["tau"], run["converged"]
    t_max = float(np.nanmax(tau)) if np.any(np.isfinite(tau)) else float(sampler.iteration) / 10
    # an unconverged short run can estimate tau > steps / 5: keep at least its second half
    discard = min(int(5 * t_max), sampler.iteration // 2)
    samples = sampler.get_chain(discard=discard, thin=max(1, int(t_max / 2)), flat=True)
    return {
        "samples": samples,
        "tau": tau,
        "steps": int(sampler.iteration),
        "n_walkers": n_walkers,
        "converged": converged,
        "acceptance": float(np.mean(sampler.acceptance_fraction)),
        "seconds": time.perf_counter() - start,
        "calls": model.n_calls - calls0,
    }

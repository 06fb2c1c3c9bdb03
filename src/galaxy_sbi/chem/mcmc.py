"""emcee on the emulator: the hierarchical posterior of a few stars (globals shared, every star's local parameters
sampled), timed against the amortised NPE (chem_timing; a short chain, see its note)."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from .priors import N_GLOBAL, Priors

log = logging.getLogger(__name__)


def hierarchical_log_posterior(emulator, obs: np.ndarray, priors: Priors, noise_dex: float):
    """log p(globals, locals | obs) up to a constant, vectorised over walkers: v (W, N_GLOBAL + 4 N) -> (W,).

    Gaussian population prior on the five parameters (birth time flat), the uniform training box as support,
    Gaussian abundance noise of ``noise_dex`` around the emulator's prediction."""
    n = len(obs)
    n_loc = 6 - N_GLOBAL
    lo, hi = priors.low, priors.high
    sig, mu = np.append(priors.sigma, np.inf), np.append(priors.mean, 0.0)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)

    def log_post(v):
        w = len(v)
        g = v[:, :N_GLOBAL]
        loc = v[:, N_GLOBAL:].reshape(w, n, n_loc)
        theta = np.concatenate([np.broadcast_to(g[:, None, :], (w, n, N_GLOBAL)), loc], axis=2)
        inside = ((theta >= lo) & (theta <= hi)).all((1, 2))
        z = (theta[..., :5] - mu[:5]) / sig[:5]
        lp = -0.5 * (z[:, 0, :N_GLOBAL] ** 2).sum(1) - 0.5 * (z[..., N_GLOBAL:] ** 2).sum((1, 2))
        with torch.no_grad():
            pred = emulator(torch.as_tensor(theta.reshape(-1, 6), dtype=torch.float32)).reshape(w, n, -1)
        ll = -0.5 * (((pred - obs_t) / noise_dex) ** 2).sum((1, 2)).double().numpy()
        return np.where(inside, lp + ll, -np.inf)

    return log_post


def emcee_timing(
    emulator, obs, truth, priors: Priors, noise_dex: float, n_walkers: int, n_steps: int, rng: np.random.Generator
) -> dict:
    """Run emcee (globals started at the truth, locals from the population prior) and time it."""
    import emcee

    n = len(obs)
    dim = N_GLOBAL + (6 - N_GLOBAL) * n
    start = priors.draw_population(n_walkers * n, rng).reshape(n_walkers, n, 6)
    p0 = np.concatenate(
        [
            np.broadcast_to(truth, (n_walkers, N_GLOBAL)) + 0.01 * rng.normal(size=(n_walkers, N_GLOBAL)),
            start[..., N_GLOBAL:].reshape(n_walkers, -1),
        ],
        axis=1,
    )
    sampler = emcee.EnsembleSampler(
        n_walkers, dim, hierarchical_log_posterior(emulator, obs, priors, noise_dex), vectorize=True
    )
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()  # emcee's public seed
    t0 = time.perf_counter()
    sampler.run_mcmc(p0, n_steps, progress=False)
    wall = time.perf_counter() - t0
    burn = n_steps // 2
    chain = sampler.get_chain(discard=burn, flat=True)[:, :N_GLOBAL]
    tau = float(np.max(sampler.get_autocorr_time(discard=burn, quiet=True)[:N_GLOBAL]))  # quiet: warns, no error
    per_eval = wall / (n_walkers * n_steps)
    # Extrapolation to 1,000 stars: each evaluation costs ~1000/n more; an ensemble sampler needs >= 2 dim
    # walkers and its autocorrelation time grows ~linearly with dim, so the wall time for a fixed number of
    # independent samples grows ~ n^3 (a lower bound, n^1, if the steps and walkers did not have to grow).
    factor = 1000.0 / n
    log.info("emcee: %d stars, %d dims, %.1f s (%.2e s per log-posterior); tau %.0f", n, dim, wall, per_eval, tau)
    return {
        "n_stars": n,
        "dim": dim,
        "n_walkers": n_walkers,
        "n_steps": n_steps,
        "wall_s": wall,
        "seconds_per_log_posterior": per_eval,
        "autocorr_time_globals": tau,
        "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
        "estimate_mean": chain.mean(0).tolist(),
        "estimate_sd": chain.std(0).tolist(),
        "truth": np.asarray(truth).tolist(),
        "extrapolated_1000_stars_s": {"linear_lower_bound": wall * factor, "cubic": wall * factor**3},
        "note": "short chain on the emulator; not converged for the locals in general (see autocorr_time); "
        "the study: ~42 h of HMC for 200 stars",
    }

"""emcee run to convergence by its integrated autocorrelation time: the one rule both graphs' MCMC baselines use."""

from __future__ import annotations

import time

import numpy as np


def emcee_moves(name: str):
    """emcee's move schedule by name: ``de``, the differential-evolution mixture (DEMove 0.8 + DESnookerMove 0.2),
    or ``stretch``, emcee's default affine-invariant stretch move (None). DE's proposals scale as 2.38 / sqrt(2 dim)
    along differences of walkers, which keeps it efficient in many dimensions where the stretch move is not."""
    import emcee

    if name == "de":
        return [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    if name == "stretch":
        return None
    raise ValueError(f"emcee moves must be 'de' or 'stretch', not {name!r}")


def run_to_convergence(sampler, p0, *, chunk: int, max_steps: int, min_tau_multiples: float, thin: int = 1) -> dict:
    """Advance an ``emcee.EnsembleSampler`` in chunks of ``chunk`` steps until the chain holds ``min_tau_multiples``
    x the largest integrated autocorrelation time after a burn-in of 5 of them (``get_autocorr_time(tol=0)``
    after every chunk), or ``max_steps``. ``thin``: keep every thin-th step (``thin_by``; the rule holds in kept
    steps, the same rule in steps). Returns tau and steps in steps, convergence, and the sampling and the
    convergence checks' seconds apart."""
    sampling = checks = 0.0
    state, tau, converged = p0, np.full(np.shape(p0)[1], np.inf), False
    while sampler.iteration * thin < max_steps:
        t0 = time.perf_counter()
        state = sampler.run_mcmc(state, max(1, chunk // thin), thin_by=thin, progress=False)
        t1 = time.perf_counter()
        tau = sampler.get_autocorr_time(tol=0)
        sampling, checks = sampling + t1 - t0, checks + time.perf_counter() - t1
        if np.all(np.isfinite(tau)) and sampler.iteration >= (min_tau_multiples + 5) * tau.max():
            converged = True
            break
    return {
        "tau": tau * thin,
        "steps": int(sampler.iteration * thin),
        "converged": converged,
        "sampling_s": sampling,
        "checks_s": checks,
    }

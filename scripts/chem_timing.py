"""emcee on the emulator (hierarchical posterior, all local parameters sampled) for a few stars, timed."""

import json
import logging
import time

import emcee
import numpy as np
import torch

from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.priors import N_GLOBAL, Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_timing")
    p = smk.params
    priors = Priors.from_config(p.priors)
    model = load_emulator(smk.input.emulator)
    cfg = p.timing["emcee"]
    n = cfg["n_stars"]
    with np.load(smk.input.data) as d:
        obs, truth = d["obs"][:n], d["truth"]
    n = len(obs)
    n_loc = 6 - N_GLOBAL
    dim = N_GLOBAL + n_loc * n
    lo, hi = priors.low, priors.high
    sig = np.append(priors.sigma, np.inf)
    mu = np.append(priors.mean, 0.0)
    noise = p.noise_dex
    obs_t = torch.as_tensor(obs, dtype=torch.float32)

    def log_post(v):  # v (W, dim): vectorised over walkers
        W = len(v)
        g = v[:, :N_GLOBAL]
        loc = v[:, N_GLOBAL:].reshape(W, n, n_loc)
        theta = np.concatenate([np.broadcast_to(g[:, None, :], (W, n, N_GLOBAL)), loc], axis=2)
        inside = ((theta >= lo) & (theta <= hi)).all((1, 2))
        z = (theta[..., :5] - mu[:5]) / sig[:5]
        lp = -0.5 * (z[:, 0, :N_GLOBAL] ** 2).sum(1) - 0.5 * (z[..., N_GLOBAL:] ** 2).sum((1, 2))
        with torch.no_grad():
            pred = model(torch.as_tensor(theta.reshape(-1, 6), dtype=torch.float32)).reshape(W, n, -1)
        ll = -0.5 * (((pred - obs_t) / noise) ** 2).sum((1, 2)).double().numpy()
        return np.where(inside, lp + ll, -np.inf)

    rng = derived_rng(p.seed, "chem_timing")
    start = priors.draw_population(cfg["n_walkers"] * n, rng).reshape(cfg["n_walkers"], n, 6)
    p0 = np.concatenate(
        [
            np.broadcast_to(truth, (cfg["n_walkers"], N_GLOBAL)) + 0.01 * rng.normal(size=(cfg["n_walkers"], N_GLOBAL)),
            start[..., N_GLOBAL:].reshape(cfg["n_walkers"], -1),
        ],
        axis=1,
    )
    sampler = emcee.EnsembleSampler(cfg["n_walkers"], dim, log_post, vectorize=True)
    sampler._random = np.random.mtrand.RandomState(int(rng.integers(2**31)))
    t0 = time.perf_counter()
    sampler.run_mcmc(p0, cfg["n_steps"], progress=False)
    wall = time.perf_counter() - t0
    chain = sampler.get_chain(discard=cfg["n_steps"] // 2, flat=True)[:, :N_GLOBAL]
    try:
        tau = float(np.max(sampler.get_autocorr_time(discard=cfg["n_steps"] // 2, quiet=True)[:N_GLOBAL]))
    except Exception:
        tau = float("nan")
    per_eval = wall / (cfg["n_walkers"] * cfg["n_steps"])
    # Extrapolation to 1,000 stars: each evaluation costs ~1000/n more; an ensemble sampler needs >= 2 dim
    # walkers and its autocorrelation time grows ~linearly with dim, so the wall time for a fixed number of
    # independent samples grows ~ n^3 (a lower bound, n^1, if the steps and walkers did not have to grow).
    factor = 1000.0 / n
    out = {
        "n_stars": n,
        "dim": dim,
        "n_walkers": cfg["n_walkers"],
        "n_steps": cfg["n_steps"],
        "wall_s": wall,
        "seconds_per_log_posterior": per_eval,
        "autocorr_time_globals": tau,
        "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
        "estimate_mean": chain.mean(0).tolist(),
        "estimate_sd": chain.std(0).tolist(),
        "truth": truth.tolist(),
        "extrapolated_1000_stars_s": {"linear_lower_bound": wall * factor, "cubic": wall * factor**3},
        "note": "short chain on the emulator; not converged for the locals in general (see autocorr_time); "
        "the study: ~42 h of HMC for 200 stars",
    }
    log.info("emcee: %d stars, %d dims, %.1f s (%.2e s per log-posterior); tau %.0f", n, dim, wall, per_eval, tau)
    with open(smk.output.timing, "w") as f:
        json.dump(out, f, indent=2)


run_script(main, snakemake)  # noqa: F821

"""emcee on the emulator: the hierarchical posterior of 1 ... 30 stars (globals shared, every star's local parameters
sampled), each run to convergence and timed against the amortised NPE (chem_timing)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..inference.mcmc import emcee_moves, run_to_convergence
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


def emcee_converged(
    emulator,
    obs,
    priors: Priors,
    noise_dex: float,
    rng: np.random.Generator,
    *,
    walkers_per_dim: float = 2.0,
    chunk: int = 500,
    max_steps: int = 50000,
    min_tau_multiples: float = 50.0,
    moves: str = "de",
    truth=None,
) -> dict:
    """emcee on the hierarchical posterior of ``obs``'s stars (globals + every star's locals), run to convergence
    by the spectra graph's rule: steps >= ``min_tau_multiples`` x the largest integrated autocorrelation time of
    all parameters (``get_autocorr_time(tol=0)``, re-estimated every ``chunk`` steps), burn-in of 5 tau dropped.
    Walkers: ``walkers_per_dim`` x dim (at least 2 dim + 2, emcee's minimum, even); globals start at the
    population mean (``truth`` if given), locals from the population prior. ``moves``: ``de`` (emcee's
    differential-evolution mixture; at 10 stars, 42 dimensions, tau ~420 steps against the stretch move's ~1,700
    after 20,000 steps) or ``stretch``."""
    import emcee

    n = len(obs)
    dim = N_GLOBAL + (6 - N_GLOBAL) * n
    n_walkers = max(2 * dim + 2, int(np.ceil(walkers_per_dim * dim / 2)) * 2)
    centre = priors.mean[:N_GLOBAL] if truth is None else np.asarray(truth, float)
    start = priors.draw_population(n_walkers * n, rng).reshape(n_walkers, n, 6)
    p0 = np.concatenate(
        [
            np.broadcast_to(centre, (n_walkers, N_GLOBAL)) + 0.01 * rng.normal(size=(n_walkers, N_GLOBAL)),
            start[..., N_GLOBAL:].reshape(n_walkers, -1),
        ],
        axis=1,
    )
    sampler = emcee.EnsembleSampler(
        n_walkers,
        dim,
        hierarchical_log_posterior(emulator, obs, priors, noise_dex),
        vectorize=True,
        moves=emcee_moves(moves),
    )
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()  # emcee's public seed
    # the chain is kept every `thin`-th step (30 stars x 50,000 steps would be 12 GB): tau and the rule are in
    # kept steps, the same rule in steps
    thin = max(1, dim // 10)
    run = run_to_convergence(
        sampler, p0, chunk=chunk, max_steps=max_steps, min_tau_multiples=min_tau_multiples, thin=thin
    )
    tau, converged, wall, checks = run["tau"], run["converged"], run["sampling_s"], run["checks_s"]
    t_max = float(np.nanmax(tau))
    chain = sampler.get_chain(discard=min(int(5 * t_max / thin), sampler.iteration // 2), flat=True)[:, :N_GLOBAL]
    log.info(
        "emcee: %d stars, %d dims, %d walkers, %d steps, tau max %.0f (globals %s), %.1f s, converged %s",
        n, dim, n_walkers, sampler.iteration * thin, t_max, np.round(tau[:N_GLOBAL]), wall, converged,
    )  # fmt: skip
    return {
        "n_stars": n,
        "dim": dim,
        "n_walkers": n_walkers,
        "moves": moves,
        "steps": int(sampler.iteration * thin),
        "converged": converged,
        "tau_max": t_max,
        "tau_globals": tau[:N_GLOBAL].tolist(),
        "wall_s": wall,
        "autocorr_checks_s": checks,
        "seconds_per_walker_step": wall / (n_walkers * sampler.iteration * thin),
        "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
        "estimate_mean": chain.mean(0).tolist(),
        "estimate_sd": chain.std(0).tolist(),
    }


def scaling_fit(n_stars, seconds, converged=None) -> dict:
    """Least-squares power law seconds = a n^b in log-log over the converged runs (a run stopped at the step cap
    gives a lower bound only), and its extrapolation to 1,000 stars (stated as an extrapolation: no chain that
    long was run). With fewer than two converged runs every run is used and the result is a lower bound."""
    n, s = np.asarray(n_stars, float), np.asarray(seconds, float)
    ok = np.ones(len(n), bool) if converged is None else np.asarray(converged, bool)
    lower_bound = bool(ok.sum() < 2)
    if lower_bound:
        ok = np.ones(len(n), bool)
    b, log_a = np.polyfit(np.log10(n[ok]), np.log10(s[ok]), 1)
    return {
        "exponent": float(b),
        "prefactor_s": float(10**log_a),
        "extrapolated_1000_stars_s": float(10 ** (log_a + 3 * b)),
        "fitted_star_counts": n[ok].astype(int).tolist(),
        "lower_bound": lower_bound,
    }


#: the study's MCMC reference (its README): HMC on 200 stars took about 42 hours
STUDY_HMC = {"n_stars": 200, "seconds": 42 * 3600.0}


def timing_study(emulator, obs, truth, priors: Priors, noise_dex: float, settings: dict, rng, combination: dict):
    """For each star count: emcee to convergence and the NPE's two combinations on the same first n stars."""
    from .multistar import infer_vs_nstars

    rows = []
    for n in settings["star_counts"]:
        mc = emcee_converged(
            emulator,
            obs[:n],
            priors,
            noise_dex,
            rng,
            walkers_per_dim=settings["walkers_per_dim"],
            chunk=settings["chunk"],
            max_steps=settings["max_steps"],
            min_tau_multiples=settings["min_tau_multiples"],
            moves=settings["moves"],
        )
        npe = infer_vs_nstars(obs[:n], [n], priors=priors, truth=truth, seed=int(rng.integers(2**31)), **combination)
        r = npe["rows"][0]
        rows.append(
            {
                **mc,
                "npe_gaussian_s": npe["timing"]["gaussian_s"],
                "npe_grid_s": npe["timing"]["grid_s"],
                "npe_gaussian_mean": np.asarray(r["gaussian_mean"]).tolist(),
                "npe_gaussian_sd": np.asarray(r["gaussian_sd"]).tolist(),
                "npe_grid_mean": np.asarray(r["grid_mean"]).tolist(),
                "npe_grid_sd": np.asarray(r["grid_sd"]).tolist(),
            }
        )
    return {
        **scalings(rows, settings["min_tau_multiples"]),
        "truth": np.asarray(truth).tolist(),
        "study_hmc": STUDY_HMC,
    }


def scalings(rows: list[dict], min_tau_multiples: float) -> dict:
    """The power law over the converged runs, and over every run with a capped run's time projected to what the
    rule needs: wall x (min_tau_multiples + 5) tau / steps (a lower bound: tau from a chain shorter than the rule
    asks is itself underestimated)."""
    for r in rows:
        need = (min_tau_multiples + 5) * r["tau_max"] / r["steps"]
        r["projected_s"] = r["wall_s"] * max(1.0, need) if not r["converged"] else r["wall_s"]
    n = [r["n_stars"] for r in rows]
    return {
        "rows": rows,
        "emcee_scaling": scaling_fit(n, [r["wall_s"] for r in rows], [r["converged"] for r in rows]),
        "emcee_scaling_projected": scaling_fit(n, [r["projected_s"] for r in rows]),
    }


def timing_markdown(result: dict, machine: str) -> str:
    fit, proj = result["emcee_scaling"], result["emcee_scaling_projected"]
    md = [
        "# emcee on the emulator against the NPE, the same stars",
        "",
        f"Machine: {machine}, one core. Truth α_IMF = {result['truth'][0]:.3f}, log10 N_Ia = {result['truth'][1]:.3f}.",
        "",
        "| stars | dim | walkers | steps | converged | τ max | emcee (s) | emcee to the rule (s) | emcee α_IMF "
        "| emcee log10 N_Ia | NPE Gaussian (s) | NPE grid (s) | NPE grid α_IMF | NPE grid log10 N_Ia |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        em, es, gm, gs = r["estimate_mean"], r["estimate_sd"], r["npe_grid_mean"], r["npe_grid_sd"]
        md.append(
            f"| {r['n_stars']} | {r['dim']} | {r['n_walkers']} | {r['steps']} | {'yes' if r['converged'] else 'no'} "
            f"| {r['tau_max']:.0f} | {r['wall_s']:.1f} | {r['projected_s']:.3g}{'' if r['converged'] else ' (projected)'} "
            f"| {em[0]:.3f} ± {es[0]:.3f} | {em[1]:.3f} ± {es[1]:.3f} "
            f"| {r['npe_gaussian_s']:.2f} | {r['npe_grid_s']:.2f} | {gm[0]:.3f} ± {gs[0]:.3f} | {gm[1]:.3f} ± {gs[1]:.3f} |"
        )
    md += [
        "",
        f"emcee's wall time (sampling; the convergence checks apart) fits {fit['prefactor_s']:.3g} s × "
        f"N^{fit['exponent']:.2f} over the converged runs ({fit['fitted_star_counts']} stars"
        f"{'; fewer than two converged: a lower bound' if fit['lower_bound'] else ''}); extrapolated (not run) to "
        f"1,000 stars: {fit['extrapolated_1000_stars_s']:.3g} s ({fit['extrapolated_1000_stars_s'] / 3600:.3g} h). "
        f"With the capped runs' times projected to the rule (wall × 55 τ / steps, a lower bound): "
        f"{proj['prefactor_s']:.3g} s × N^{proj['exponent']:.2f} over every run, "
        f"{proj['extrapolated_1000_stars_s']:.3g} s ({proj['extrapolated_1000_stars_s'] / 3600:.3g} h) at 1,000 stars. "
        f"The study's reference: HMC, ~42 h for 200 stars. Convergence: >= 50 × the largest integrated "
        "autocorrelation time of all parameters after a burn-in of 5 of them, or the configured cap (then 'no').",
    ]
    return "\n".join(md) + "\n"

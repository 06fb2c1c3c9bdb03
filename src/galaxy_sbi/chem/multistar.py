"""Combining single-star posteriors into the posterior of the galaxy's global parameters.

Stars i = 1..N share Lambda = (alpha_IMF, log10_N_Ia); each has its own local parameters l_i drawn from the
population prior pi(l). The exact posterior is

    p(Lambda | x_1..N)  ∝  pi(Lambda) prod_i p(x_i | Lambda),    p(x_i | Lambda) = ∫ p(x_i | Lambda, l) pi(l) dl.

Two estimates of it:

* ``gaussian`` (the study): sample the joint 6-parameter NPE for each star, fit a 2-D Gaussian N(m_i, S_i) to
  the (alpha_IMF, log10_N_Ia) samples, and multiply: prod_i q_i / p_npe^(N-1). The NPE prior is uniform on the
  box, so the prior correction only restricts to the box; precisions add up. We multiply by the Gaussian
  population prior of Lambda (the inference prior everywhere in this graph). Approximations: Gaussian shape
  of every single-star posterior (they are broad, skewed and truncated by the box), and the joint NPE
  marginalises the locals over its *uniform* training box instead of the population prior. Both errors are
  per star and add up coherently, so the combined posterior narrows as 1/sqrt(N) around a biased point:
  over-confident for large N.
* ``grid`` (calibrated by construction, up to NPE accuracy): the ``global`` NPE was trained with Lambda
  uniform and l ~ pi(l), so q(Lambda | x) / U(Lambda) ∝ p(x | Lambda) with the locals marginalised under the
  population prior. We sum log q(Lambda | x_i) over stars on a 2-D grid of Lambda (zooming in around the mass
  as N grows) and add log pi(Lambda): no Gaussian assumption, no wrong local prior. Remaining error: the NPE's
  own density error, which also adds up over N (the coverage plot shows how much).
"""

from __future__ import annotations

import time

import numpy as np

from ..inference.calibration import credibility_gaussian, credibility_grid
from .npe import log_prob_grid, sample
from .priors import N_GLOBAL, Priors


# ---- Gaussian (the study) ------------------------------------------------------------------------------
def gaussian_fits(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples (S, N, >=2) -> means (N, 2) and covariances (N, 2, 2) of (alpha_IMF, log10_N_Ia)."""
    s = np.asarray(samples)[..., :N_GLOBAL]
    mean = s.mean(0)
    d = s - mean
    cov = np.einsum("sni,snj->nij", d, d) / (len(s) - 1)
    return mean, cov + 1e-8 * np.eye(N_GLOBAL)  # a degenerate sample set stays invertible


def combine_gaussian(means, covs, prior_mean=None, prior_cov=None):
    """Product of Gaussians (prior precision added once when given): (mean (2,), cov (2, 2))."""
    prec = np.linalg.inv(covs)
    p_sum = prec.sum(0)
    h = np.einsum("nij,nj->i", prec, means)
    if prior_mean is not None:
        pp = np.linalg.inv(prior_cov)
        p_sum = p_sum + pp
        h = h + pp @ prior_mean
    cov = np.linalg.inv(p_sum)
    return cov @ h, cov


# ---- grid (calibrated) ---------------------------------------------------------------------------------
def _grid(box, n):
    a = np.linspace(box[0, 0], box[0, 1], n)
    b = np.linspace(box[1, 0], box[1, 1], n)
    A, B = np.meshgrid(a, b, indexing="ij")
    return np.column_stack([A.ravel(), B.ravel()]), (a, b)


def grid_posterior(posterior, x, priors: Priors, n_grid: int = 40, n_zoom: int = 4, truth=None,
                   threshold: float = 15.0) -> dict:
    """Posterior of Lambda on a zoomed 2-D grid from the ``global`` NPE: mean, cov, credibility of ``truth``.

    Stage 0 covers the prior box; each next stage covers the cells within ``threshold`` of the maximum log
    posterior (plus one cell), until a cell is < 1/3 of the posterior width or ``n_zoom`` stages."""
    box = np.column_stack([priors.low[:N_GLOBAL], priors.high[:N_GLOBAL]])
    extra = np.atleast_2d(truth) if truth is not None else np.zeros((0, N_GLOBAL))
    for _ in range(n_zoom + 1):
        pts, (a, b) = _grid(box, n_grid)
        allpts = np.vstack([pts, extra])
        logp = log_prob_grid(posterior, x, allpts).sum(0) + priors.global_log_prior(allpts)
        logp_grid, logp_extra = logp[: len(pts)], logp[len(pts):]
        w = np.exp(logp_grid - logp_grid.max())
        w /= w.sum()
        mean = w @ pts
        d = pts - mean
        cov = (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0)
        sd = np.sqrt(np.diag(cov))
        step = np.array([a[1] - a[0], b[1] - b[0]])
        if np.all(step < sd / 3):
            break
        keep = (logp_grid > logp_grid.max() - threshold).reshape(n_grid, n_grid)
        ia, ib = np.where(keep.any(1))[0], np.where(keep.any(0))[0]
        new = np.array([[a[max(ia[0] - 1, 0)], a[min(ia[-1] + 1, n_grid - 1)]],
                        [b[max(ib[0] - 1, 0)], b[min(ib[-1] + 1, n_grid - 1)]]])
        # never shrink below a few posterior widths: keeps the peak resolved, not aliased
        centre, half = new.mean(1), np.maximum((new[:, 1] - new[:, 0]) / 2, 4 * sd)
        new = np.column_stack([centre - half, centre + half])
        if np.allclose(new, box):
            break
        box = new
    out = {"mean": mean, "cov": cov, "box": box, "grid_step": step}
    if truth is not None:
        out["credibility"] = credibility_grid(logp_grid, float(logp_extra[0]))
    return out


# ---- estimates vs number of stars ----------------------------------------------------------------------
def infer_vs_nstars(obs, star_counts, joint_posterior, global_posterior, priors: Priors, truth, *,
                    n_samples: int = 1000, n_grid: int = 48, seed: int = 0) -> dict:
    """Both combinations for the first n stars, n in ``star_counts``; wall times of the largest n."""
    star_counts = [int(n) for n in star_counts if n <= len(obs)]
    prior_mean, prior_cov = priors.mean[:N_GLOBAL], np.diag(priors.sigma[:N_GLOBAL] ** 2)
    n_max = max(star_counts)
    t0 = time.perf_counter()
    samples = sample(joint_posterior, obs[:n_max], n_samples, seed=seed)
    means, covs = gaussian_fits(samples)
    t_sample = time.perf_counter() - t0
    rows = []
    timing = {}
    for n in star_counts:
        t1 = time.perf_counter()
        gm, gc = combine_gaussian(means[:n], covs[:n], prior_mean, prior_cov)
        t_gauss = time.perf_counter() - t1
        t2 = time.perf_counter()
        grid = grid_posterior(global_posterior, obs[:n], priors, n_grid=n_grid, truth=truth)
        t_grid = time.perf_counter() - t2
        rows.append({"n_stars": n,
                     "gaussian_mean": gm, "gaussian_sd": np.sqrt(np.diag(gc)),
                     "gaussian_credibility": float(credibility_gaussian(gm, gc, truth)),
                     "grid_mean": grid["mean"], "grid_sd": np.sqrt(np.diag(grid["cov"])),
                     "grid_credibility": grid["credibility"]})
        if n == n_max:
            timing = {"n_stars": n, "gaussian_s": t_sample * n / n_max + t_gauss, "grid_s": t_grid,
                      "npe_samples_per_star": n_samples}
    return {"rows": rows, "timing": timing}


def coverage_study(yields, priors: Priors, joint_posterior, global_posterior, *, n_galaxies: int, star_counts,
                   noise_dex: float, n_samples: int, n_grid: int, rng: np.random.Generator, log=None) -> dict:
    """Credibility of the true Lambda under both combinations for mock galaxies with Lambda ~ population prior."""
    from .datasets import simulated_galaxy

    star_counts = [int(n) for n in star_counts]
    cred = {"gaussian": np.full((n_galaxies, len(star_counts)), np.nan),
            "grid": np.full((n_galaxies, len(star_counts)), np.nan)}
    truths = np.empty((n_galaxies, N_GLOBAL))
    for g in range(n_galaxies):
        truth = rng.normal(priors.mean[:N_GLOBAL], priors.sigma[:N_GLOBAL])
        truth = np.clip(truth, priors.low[:N_GLOBAL], priors.high[:N_GLOBAL])
        truths[g] = truth
        gal = simulated_galaxy(yields, priors, truth, max(star_counts), noise_dex, rng)
        res = infer_vs_nstars(gal["obs"], star_counts, joint_posterior, global_posterior, priors, truth,
                              n_samples=n_samples, n_grid=n_grid, seed=int(rng.integers(2**31)))
        for j, row in enumerate(res["rows"]):
            cred["gaussian"][g, j] = row["gaussian_credibility"]
            cred["grid"][g, j] = row["grid_credibility"]
        if log:
            log.info("coverage galaxy %d/%d: truth %s, credibility gaussian %s grid %s", g + 1, n_galaxies,
                     np.round(truth, 3), np.round(cred["gaussian"][g], 2), np.round(cred["grid"][g], 2))
    return {"truths": truths, "star_counts": np.array(star_counts), **{f"credibility_{k}": v for k, v in cred.items()}}

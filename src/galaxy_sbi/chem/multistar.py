"""Combining single-star posteriors into the posterior of the galaxy's global parameters.

Stars i = 1..N share Lambda = (alpha_IMF, log10_N_Ia); each has its own local parameters l_i drawn from the
population prior pi(l). The exact posterior is

    p(Lambda | x_1..N)  ∝  pi(Lambda) prod_i p(x_i | Lambda),    p(x_i | Lambda) = ∫ p(x_i | Lambda, l) pi(l) dl.

Two estimates of it:

* ``gaussian`` (the study): sample the joint 6-parameter NPE for each star, fit a 2-D Gaussian N(m_i, S_i) to
  the (alpha_IMF, log10_N_Ia) samples, and multiply: prod_i q_i / p_npe^(N-1). The NPE prior is uniform on the
  population prior (``chem.npe.joint_prior: population``, the default), so every q_i holds the prior once and
  the prior correction divides N - 1 copies of it out: precisions add up, minus (N - 1) prior precisions. With a
  joint NPE trained on the uniform box (``box``) the correction only restricts to the box and the population
  prior of Lambda (the inference prior everywhere in this graph) is multiplied in once; that NPE then
  marginalises the locals over the box instead of the population prior. Approximations: Gaussian shape of every
  single-star posterior (they are broad, skewed and truncated by the box) and the NPE's own density error. Both
  are per star and add up coherently, so the combined posterior narrows as 1/sqrt(N) around a biased point:
  over-confident for large N.
* ``grid`` (calibrated): the ``global`` NPE was trained with Lambda uniform and l ~ pi(l) on *accepted*
  simulator runs (a star exists only where the simulator accepts its parameters, as in every data set), so
  q(Lambda | x) ∝ U(Lambda) P(acc | Lambda) p(x | Lambda, acc). We sum log q(Lambda | x_i) - log P(acc | Lambda)
  over stars on a 2-D grid of Lambda (zooming in around the mass as N grows) and add log pi(Lambda): no
  Gaussian assumption, no wrong local prior, no emulator error. The NPE's own density error still adds up
  coherently over N (measured: with 1e5 training sets the grid posterior alone covers the truth of only ~7 % of
  galaxies at the 68 % level with 1,000 stars), so the calibrated posterior is the grid posterior convolved with
  a systematic-error kernel N(0, Sigma_sys) whose covariance is measured on independent mock galaxies of the
  training simulator (:func:`systematics_study`, :func:`add_systematics`). ``grid_stat`` is the grid posterior
  without the kernel. The kernel is constant in N: at small N the statistical width dominates, at large N the
  error bar stops shrinking at the NPE's systematic floor instead of narrowing as 1/sqrt(N) around a biased
  point. It calibrates against the training simulator only; misspecification (data sets 2-4) is not in it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from ..inference.calibration import credibility_gaussian, credibility_grid
from .npe import log_prob_grid, sample
from .priors import N_GLOBAL, Priors

#: gaussian: the study's product of Gaussians; grid: the calibrated method (grid + systematic kernel);
#: grid_stat: the grid posterior without the systematic kernel (a diagnostic)
METHODS = ("gaussian", "grid", "grid_stat")


# ---- Gaussian (the study) ------------------------------------------------------------------------------
def gaussian_fits(samples: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples (S, N, >=2) -> means (N, 2) and covariances (N, 2, 2) of (alpha_IMF, log10_N_Ia); ``weights``
    (S, N), summing to one per star, weight the samples (:func:`age_weights`)."""
    s = np.asarray(samples)[..., :N_GLOBAL]
    if weights is None:
        mean = s.mean(0)
        d = s - mean
        cov = np.einsum("sni,snj->nij", d, d) / (len(s) - 1)
    else:
        w = np.asarray(weights)[..., None]
        mean = (w * s).sum(0)
        d = s - mean
        cov = np.einsum("sn,sni,snj->nij", w[..., 0], d, d) / (1 - (w[..., 0] ** 2).sum(0))[:, None, None]
    return mean, cov + 1e-8 * np.eye(N_GLOBAL)  # a degenerate sample set stays invertible


def age_weights(samples: np.ndarray, birth_time_obs: np.ndarray) -> np.ndarray:
    """(S, N) importance weights that condition each star's posterior samples on an observed birth time.

    ``birth_time_obs`` (N, 2): measured birth time and its Gaussian error (Gyr; NaN: no age). With the age
    measured independently of the abundances, p(theta | x, t_obs) is p(theta | x) N(t_obs; t, err): the samples
    of the abundance posterior reweighted by the age likelihood of their birth time."""
    t = np.asarray(samples)[..., -1]  # birth time, the last parameter
    obs = np.asarray(birth_time_obs, float)
    no_age = ~np.isfinite(obs).all(1)
    if np.any(obs[~no_age, 1] <= 0):
        raise ValueError("birth_time_obs: every age error must be positive")
    err = np.where(no_age, 1.0, obs[:, 1])
    logw = np.where(no_age, 0.0, -0.5 * ((t - obs[:, 0]) / err) ** 2)  # no age: equal weights
    w = np.exp(logw - logw.max(0))
    return w / w.sum(0)


def combine_gaussian(means, covs, prior_mean=None, prior_cov=None, prior_in_each: bool = False):
    """Product of Gaussians with the prior once: (mean (2,), cov (2, 2)).

    ``prior_in_each=False``: the single-star posteriors had a flat prior, so the prior precision is added once.
    ``prior_in_each=True``: every single-star posterior already holds the Gaussian prior, so N - 1 copies of it
    are divided out (the study's prior correction): precision P_prior + sum_i (P_i - P_prior), in information
    form. A star whose fitted posterior is wider than the prior in some direction (an uninformative star, or a
    few-hundred-sample fit) adds no negative information there: its likelihood keeps only the directions
    where P_i - P_prior is positive."""
    prec = np.linalg.inv(covs)
    h_star = np.einsum("nij,nj->ni", prec, means)
    h = h_star.sum(0)
    if prior_mean is None:
        p_sum = prec.sum(0)
    else:
        pp = np.linalg.inv(prior_cov)
        if prior_in_each:
            # per star the likelihood in information form, (P_i - P_prior, P_i m_i - P_prior m_prior), kept in the
            # eigen-directions where it adds information
            val, vec = np.linalg.eigh(prec - pp)
            info = (val > 0).astype(float)
            eta = np.einsum("nij,nj,nkj,nk->ni", vec, info, vec, h_star - pp @ prior_mean)
            p_sum = pp + np.einsum("nij,nj,nkj->ik", vec, val * info, vec)
            h = pp @ prior_mean + eta.sum(0)
        else:
            p_sum = prec.sum(0) + pp
            h = h + pp @ prior_mean
    cov = np.linalg.inv(p_sum)
    return cov @ h, cov


# ---- grid (calibrated) ---------------------------------------------------------------------------------
def _grid(box, n):
    a = np.linspace(box[0, 0], box[0, 1], n)
    b = np.linspace(box[1, 0], box[1, 1], n)
    A, B = np.meshgrid(a, b, indexing="ij")
    return np.column_stack([A.ravel(), B.ravel()]), (a, b)


def grid_posterior(
    posterior,
    x,
    priors: Priors,
    n_grid: int = 40,
    n_zoom: int = 4,
    truth=None,
    threshold: float = 15.0,
    acceptance=None,
    n_coarse: int | None = None,
) -> dict:
    """Posterior of Lambda on a zoomed 2-D grid from the ``global`` NPE: mean, cov, credibility of ``truth``.

    ``acceptance``: the :class:`~galaxy_sbi.chem.npe.AcceptanceModel` of an NPE trained on accepted
    simulator sets; its log P(acc | Lambda) is subtracted once per star (the per-star likelihood is
    q(Lambda | x) / P(acc | Lambda)).

    Stage 0 covers the prior box; each next stage covers the cells within ``threshold`` of the maximum log
    posterior (plus one cell), until a cell is < 1/3 of the posterior width or ``n_zoom`` stages.

    ``n_coarse`` (< ``n_grid``): the zoom stages use ``n_coarse`` points per axis, and the stage after the box
    has converged (at the latest stage ``n_zoom``) ``n_grid``: the NPE is evaluated on ~n_coarse^2 instead of
    n_grid^2 points in the zoom stages, and the last stage skips the points where the (interpolated) coarse log
    posterior is > ``threshold`` + 3 below its maximum (weight < e^-18: no mass; their log density is -inf)."""
    box = np.column_stack([priors.low[:N_GLOBAL], priors.high[:N_GLOBAL]])
    extra = np.atleast_2d(truth) if truth is not None else np.zeros((0, N_GLOBAL))
    n_full = n_grid
    coarse = n_coarse is not None and n_coarse < n_full
    if coarse:
        n_grid = n_coarse
    coarse_logp = None
    for stage in range(n_zoom + 1 + coarse):
        pts, (a, b) = _grid(box, n_grid)
        allpts = np.vstack([pts, extra])
        ev = np.ones(len(allpts), bool)
        if coarse_logp is not None:  # the full stage after the coarse ones: only where the posterior has mass
            ev[: len(pts)] = coarse_logp(pts) > coarse_logp.values.max() - threshold - 3
            coarse_logp = None
        logp = np.full(len(allpts), -np.inf)
        logp[ev] = log_prob_grid(posterior, x, allpts[ev]).sum(0) + priors.global_log_prior(allpts[ev])
        if acceptance is not None:
            logp[ev] = logp[ev] - len(x) * acceptance.log_p(allpts[ev])
        logp_grid, logp_extra = logp[: len(pts)], logp[len(pts) :]
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
        new = np.array(
            [
                [a[max(ia[0] - 1, 0)], a[min(ia[-1] + 1, n_grid - 1)]],
                [b[max(ib[0] - 1, 0)], b[min(ib[-1] + 1, n_grid - 1)]],
            ]
        )
        # never shrink below a few posterior widths: keeps the peak resolved, not aliased
        centre, half = new.mean(1), np.maximum((new[:, 1] - new[:, 0]) / 2, 4 * sd)
        new = np.column_stack([centre - half, centre + half])
        if coarse and (stage >= n_zoom - 1 or np.all(new[:, 1] - new[:, 0] > 0.5 * (box[:, 1] - box[:, 0]))):
            coarse_logp = RegularGridInterpolator(
                (a, b), logp_grid.reshape(n_grid, n_grid), bounds_error=False, fill_value=np.inf
            )
            coarse, n_grid, box = False, n_full, new  # converged (or the last stage): the full-resolution stage
            continue
        if np.allclose(new, box):
            break
        box = new
    out = {"mean": mean, "cov": cov, "box": box, "grid_step": step, "points": pts, "weights": w}
    if truth is not None:
        out["credibility"] = credibility_grid(logp_grid, float(logp_extra[0]))
    return out


def read_systematics_cov(path) -> np.ndarray:
    """The systematic-error covariance of the global parameters written by the chem_systematics rule."""
    import json

    with open(path) as f:
        return np.asarray(json.load(f)["sys_cov"], float)


def load_combination(joint_path, global_path, systematics_path, settings: dict) -> dict:
    """What both combinations (:func:`infer_vs_nstars`, :func:`coverage_study`) take besides the stars: the
    trained joint and global NPEs, the global NPE's prior acceptance, the systematic kernel and the
    ``chem.multistar`` sampling settings, as keyword arguments."""
    from .npe import load_npe, load_posterior

    joint, joint_summary = load_posterior(joint_path)
    glob, _, acceptance = load_npe(global_path)
    return dict(
        joint_posterior=joint,
        global_posterior=glob,
        acceptance=acceptance,
        sys_cov=read_systematics_cov(systematics_path),
        n_samples=settings["n_samples"],
        n_grid=settings["n_grid"],
        n_coarse=settings.get("n_coarse"),
        joint_prior=joint_summary.get("training_prior", "box"),
    )


def add_systematics(grid: dict, sys_cov, truth=None, n_grid: int = 40) -> dict:
    """The grid posterior convolved with a Gaussian systematic-error kernel N(0, ``sys_cov``).

    The grid posterior is a mixture of its cells; the convolved density is sum_c w_c N(lambda; lambda_c, K)
    with K = sys_cov + the cell's own variance (step^2 / 12 per axis), evaluated on a fresh grid of +- 5
    (total) sd around the mean; mean unchanged, covariance cov + K, HPD credibility of ``truth`` on that grid."""
    sys_cov = np.asarray(sys_cov, float)
    if not np.any(sys_cov):
        return {k: grid[k] for k in ("mean", "cov", "credibility") if k in grid}
    K = sys_cov + np.diag(np.asarray(grid["grid_step"]) ** 2 / 12)
    mean, cov = grid["mean"], grid["cov"] + K
    out = {"mean": mean, "cov": cov}
    if truth is not None:
        sd = np.sqrt(np.diag(cov))
        box = np.column_stack([mean - 5 * sd, mean + 5 * sd])
        pts, _ = _grid(box, n_grid)
        allpts = np.vstack([pts, np.atleast_2d(truth)])
        keep = grid["weights"] > 1e-12 * grid["weights"].max()
        c, w = grid["points"][keep], grid["weights"][keep]
        Ki = np.linalg.inv(K)
        d = allpts[:, None, :] - c[None]  # (G, C, 2)
        m2 = np.einsum("gci,ij,gcj->gc", d, Ki, d)
        logd = np.log(np.exp(-0.5 * (m2 - m2.min(1, keepdims=True))) @ w) - 0.5 * m2.min(1)
        out["credibility"] = credibility_grid(logd[:-1], float(logd[-1]))
    return out


# ---- estimates vs number of stars ----------------------------------------------------------------------
def infer_vs_nstars(
    obs,
    star_counts,
    joint_posterior,
    global_posterior,
    priors: Priors,
    truth,
    *,
    n_samples: int = 1000,
    n_grid: int = 48,
    seed: int = 0,
    acceptance=None,
    sys_cov=None,
    n_coarse: int | None = None,
    joint_prior: str = "box",
    birth_time_obs=None,
) -> dict:
    """Both combinations for the first n stars, n in ``star_counts``; wall times of the largest n.

    ``birth_time_obs`` (N, 2): observed birth times and errors; the Gaussian product then conditions each star's
    posterior on its age (:func:`age_weights`). The grid's global NPE has no age input and ignores them.

    ``joint_prior``: the prior the joint NPE was trained with (``population``: its single-star posteriors hold the
    population prior, which the Gaussian product divides out N - 1 times; ``box``: flat).

    ``grid``: the calibrated method, the grid posterior convolved with the systematic kernel ``sys_cov``
    (:func:`add_systematics`); ``grid_stat``: the grid posterior alone (statistical errors only)."""
    sys_cov = np.zeros((N_GLOBAL, N_GLOBAL)) if sys_cov is None else np.asarray(sys_cov, float)
    star_counts = [int(n) for n in star_counts if n <= len(obs)]
    prior_mean, prior_cov = priors.mean[:N_GLOBAL], np.diag(priors.sigma[:N_GLOBAL] ** 2)
    n_max = max(star_counts)
    t0 = time.perf_counter()
    samples = sample(joint_posterior, obs[:n_max], n_samples, seed=seed)
    weights = None if birth_time_obs is None else age_weights(samples, np.asarray(birth_time_obs)[:n_max])
    means, covs = gaussian_fits(samples, weights)
    t_sample = time.perf_counter() - t0
    rows = []
    timing = {}
    for n in star_counts:
        t1 = time.perf_counter()
        gm, gc = combine_gaussian(means[:n], covs[:n], prior_mean, prior_cov, prior_in_each=joint_prior == "population")
        t_gauss = time.perf_counter() - t1
        t2 = time.perf_counter()
        grid = grid_posterior(
            global_posterior, obs[:n], priors, n_grid=n_grid, truth=truth, acceptance=acceptance, n_coarse=n_coarse
        )
        cal = add_systematics(grid, sys_cov, truth, n_grid=n_grid)
        t_grid = time.perf_counter() - t2
        rows.append(
            {
                "n_stars": n,
                "gaussian_mean": gm,
                "gaussian_sd": np.sqrt(np.diag(gc)),
                "gaussian_credibility": float(credibility_gaussian(gm, gc, truth)),
                "grid_mean": cal["mean"],
                "grid_sd": np.sqrt(np.diag(cal["cov"])),
                "grid_credibility": cal["credibility"],
                "grid_stat_mean": grid["mean"],
                "grid_stat_sd": np.sqrt(np.diag(grid["cov"])),
                "grid_stat_credibility": grid["credibility"],
            }
        )
        if n == n_max:
            timing = {
                "n_stars": n,
                "gaussian_s": t_sample * n / n_max + t_gauss,
                "grid_s": t_grid,
                "npe_samples_per_star": n_samples,
            }
    return {"rows": rows, "timing": timing}


def coverage_study(
    yields,
    priors: Priors,
    joint_posterior,
    global_posterior,
    *,
    n_galaxies: int,
    star_counts,
    noise_dex: float,
    n_samples: int,
    n_grid: int,
    rng: np.random.Generator,
    log=None,
    acceptance=None,
    sys_cov=None,
    n_coarse: int | None = None,
    joint_prior: str = "box",
) -> dict:
    """Credibility of the true Lambda under both combinations for mock galaxies with Lambda ~ population prior."""
    from .datasets import simulated_galaxy

    star_counts = [int(n) for n in star_counts]
    cred = {m: np.full((n_galaxies, len(star_counts)), np.nan) for m in METHODS}
    means = {m: np.full((n_galaxies, len(star_counts), N_GLOBAL), np.nan) for m in METHODS}
    sds = {m: np.full((n_galaxies, len(star_counts), N_GLOBAL), np.nan) for m in METHODS}
    truths = np.empty((n_galaxies, N_GLOBAL))
    for g in range(n_galaxies):
        truth = rng.normal(priors.mean[:N_GLOBAL], priors.sigma[:N_GLOBAL])
        truth = np.clip(truth, priors.low[:N_GLOBAL], priors.high[:N_GLOBAL])
        truths[g] = truth
        gal = simulated_galaxy(yields, priors, truth, max(star_counts), noise_dex, rng)
        res = infer_vs_nstars(
            gal["obs"],
            star_counts,
            joint_posterior,
            global_posterior,
            priors,
            truth,
            n_samples=n_samples,
            n_grid=n_grid,
            seed=int(rng.integers(2**31)),
            acceptance=acceptance,
            sys_cov=sys_cov,
            n_coarse=n_coarse,
            joint_prior=joint_prior,
        )
        for j, row in enumerate(res["rows"]):
            for m in METHODS:
                cred[m][g, j] = row[f"{m}_credibility"]
                means[m][g, j], sds[m][g, j] = row[f"{m}_mean"], row[f"{m}_sd"]
        if log:
            log.info(
                "coverage galaxy %d/%d: truth %s, credibility gaussian %s grid %s grid_stat %s",
                g + 1,
                n_galaxies,
                np.round(truth, 3),
                np.round(cred["gaussian"][g], 2),
                np.round(cred["grid"][g], 2),
                np.round(cred["grid_stat"][g], 2),
            )
    return {
        "truths": truths,
        "star_counts": np.array(star_counts),
        **{f"credibility_{k}": v for k, v in cred.items()},
        **{f"mean_{k}": v for k, v in means.items()},
        **{f"sd_{k}": v for k, v in sds.items()},
    }


def pull_summary(truths, means, sds) -> dict:
    """Per global parameter over mock galaxies: mean |estimate - truth| / sd and the marginal 68 % / 95 % coverage
    of estimate +- z sd, with the binomial band (95 %) a calibrated method's coverage falls in."""
    from scipy import stats

    from ..inference.calibration import coverage_band

    pull = np.abs(np.asarray(means) - truths) / np.asarray(sds)  # (G, 2)
    out = {}
    for i, name in enumerate(("alpha_IMF", "log10_N_Ia")):
        row = {"mean_abs_pull": float(np.mean(pull[:, i])), "n_galaxies": int(len(pull))}
        for level in (0.68, 0.95):
            inside = float(np.mean(pull[:, i] <= stats.norm.ppf(0.5 + level / 2)))
            lo, hi = coverage_band(len(pull), [level])
            row[f"coverage_{int(level * 100)}"] = inside
            row[f"band_{int(level * 100)}"] = [float(lo[0]), float(hi[0])]
            row[f"within_band_{int(level * 100)}"] = bool(lo[0] <= inside <= hi[0])
        out[name] = row
    return out


def systematics_study(
    yields,
    priors: Priors,
    global_posterior,
    *,
    n_galaxies: int,
    n_stars: int,
    noise_dex: float,
    n_grid: int,
    rng: np.random.Generator,
    acceptance=None,
    log=None,
    n_coarse: int | None = None,
) -> dict:
    """Systematic-error covariance of the grid combination from mock galaxies of the training simulator.

    For galaxies with Lambda ~ population prior and ``n_stars`` stars, the grid posterior's mean misses the
    truth by d = b(Lambda) + statistical noise, where b is the coherent sum of the NPE's per-star density
    errors (it does not average down with N). Sigma_sys = mean(d d^T) - mean(stat cov), clipped to be positive
    semi-definite: the kernel :func:`add_systematics` adds to every grid posterior of the calibrated method.
    These galaxies are drawn from their own random stream, independent of the coverage study's."""
    from .datasets import simulated_galaxy

    d, covs, truths = [], [], []
    for g in range(n_galaxies):
        truth = np.clip(
            rng.normal(priors.mean[:N_GLOBAL], priors.sigma[:N_GLOBAL]), priors.low[:N_GLOBAL], priors.high[:N_GLOBAL]
        )
        gal = simulated_galaxy(yields, priors, truth, n_stars, noise_dex, rng)
        res = grid_posterior(
            global_posterior, gal["obs"], priors, n_grid=n_grid, acceptance=acceptance, n_coarse=n_coarse
        )
        d.append(res["mean"] - truth)
        covs.append(res["cov"])
        truths.append(truth)
        if log:
            log.info(
                "systematics galaxy %d/%d: truth %s, offset %s, stat sd %s",
                g + 1,
                n_galaxies,
                np.round(truth, 3),
                np.round(d[-1], 4),
                np.round(np.sqrt(np.diag(res["cov"])), 4),
            )
    d, covs = np.array(d), np.array(covs)
    sys_cov, inlier = robust_systematic_cov(d, covs)
    return {
        "sys_cov": sys_cov,
        "sys_sd": np.sqrt(np.diag(sys_cov)),
        "offsets": d,
        "stat_cov": covs,
        "truths": np.array(truths),
        "mean_offset": d.mean(0),
        "rms_offset": np.sqrt((d**2).mean(0)),
        "mean_stat_sd": np.sqrt(covs[:, [0, 1], [0, 1]]).mean(0),
        "n_galaxies": n_galaxies,
        "n_stars": n_stars,
        "inlier": inlier,
        "n_outliers": int((~inlier).sum()),
    }


def _psd(m):
    val, vec = np.linalg.eigh((m + m.T) / 2)
    return (vec * np.clip(val, 0.0, None)) @ vec.T


def robust_systematic_cov(d, covs, clip: float = 9.21, n_iter: int = 10):
    """Sigma_sys = mean over inliers of (d d^T - stat cov), positive semi-definite.

    Start from per-axis robust variances (1.4826 MAD of the offsets about zero, squared, minus the median
    statistical variance); then iterate: a galaxy is an outlier when its offset's Mahalanobis distance^2 under
    Sigma_sys + its own stat cov exceeds ``clip`` (chi2_2 99 %: 9.21). Outliers are galaxies in the far tails
    of the prior (|truth - mean| > 3 sigma), where the NPE saw few training sets: the kernel describes the
    bulk of the population, and the outliers are counted, not hidden."""
    d, covs = np.asarray(d, float), np.asarray(covs, float)
    var = (1.4826 * np.median(np.abs(d), 0)) ** 2 - np.median(covs[:, [0, 1], [0, 1]], 0)
    sys_cov = np.diag(np.clip(var, 0.0, None))
    inlier = np.ones(len(d), bool)
    for _ in range(n_iter):
        tot = sys_cov[None] + covs
        m2 = np.einsum("gi,gi->g", d, np.linalg.solve(tot, d[..., None])[..., 0])
        new = m2 <= clip
        if not new.any():
            break
        sys_cov = _psd((np.einsum("gi,gj->ij", d[new], d[new]) - covs[new].sum(0)) / new.sum())
        if np.array_equal(new, inlier):
            break
        inlier = new
    return sys_cov, inlier


def coverage_summary(res: dict, levels) -> dict:
    """coverage_metrics.json: empirical coverage of each combination method at each star count."""
    from ..inference.calibration import empirical_coverage

    methods = {}
    for method in METHODS:
        cred = res[f"credibility_{method}"]
        methods[method] = {
            str(n): {
                "coverage": empirical_coverage(cred[:, j], levels).tolist(),
                "coverage_68": float(empirical_coverage(cred[:, j], [0.68])[0]),
                "coverage_95": float(empirical_coverage(cred[:, j], [0.95])[0]),
                # per parameter (the N_Ia target: mean |Delta| / sigma <= 1, marginal coverage in the band)
                "parameters": pull_summary(res["truths"], res[f"mean_{method}"][:, j], res[f"sd_{method}"][:, j]),
            }
            for j, n in enumerate(res["star_counts"])
        }
    return {
        "n_galaxies": int(len(res[f"credibility_{METHODS[0]}"])),
        "levels": np.asarray(levels).tolist(),
        "methods": methods,
        "note": "grid: the calibrated method (grid posterior + systematic kernel of results/chem/systematics.json, "
        "estimated on other mock galaxies); grid_stat: the grid posterior alone",
    }


def systematics_kernel(
    yields,
    priors,
    glob,
    *,
    n_galaxies: int,
    n_stars: int,
    noise_dex: float,
    n_grid: int,
    rng,
    acceptance=None,
    n_coarse=None,
    log=None,
) -> dict:
    """systematics.json: the kernel from :func:`systematics_study`, or a zero kernel when ``n_galaxies`` is 0."""
    log = log or logging.getLogger(__name__)
    if n_galaxies <= 0:
        return {
            "sys_cov": np.zeros((N_GLOBAL, N_GLOBAL)),
            "sys_sd": np.zeros(N_GLOBAL),
            "n_galaxies": 0,
            "note": "chem.systematics.n_galaxies = 0: no systematic kernel (grid = grid_stat)",
        }
    res = systematics_study(
        yields,
        priors,
        glob,
        n_galaxies=n_galaxies,
        n_stars=n_stars,
        noise_dex=noise_dex,
        n_grid=n_grid,
        rng=rng,
        acceptance=acceptance,
        log=log,
        n_coarse=n_coarse,
    )
    log.info(
        "systematic sd %s (mean offset %s, rms offset %s, mean statistical sd %s, %d galaxies x %d stars, "
        "%d outliers: truths %s)",
        np.round(res["sys_sd"], 4),
        np.round(res["mean_offset"], 4),
        np.round(res["rms_offset"], 4),
        np.round(res["mean_stat_sd"], 4),
        res["n_galaxies"],
        res["n_stars"],
        res["n_outliers"],
        np.round(res["truths"][~res["inlier"]], 3).tolist(),
    )
    return res


def log_rows(res: dict, log) -> None:
    """One log line per star count of :func:`infer_vs_nstars`."""
    for r in res["rows"]:
        log.info(
            "N=%d gaussian %s +- %s | grid %s +- %s (statistical only: +- %s)",
            r["n_stars"],
            np.round(r["gaussian_mean"], 4),
            np.round(r["gaussian_sd"], 4),
            np.round(r["grid_mean"], 4),
            np.round(r["grid_sd"], 4),
            np.round(r["grid_stat_sd"], 4),
        )
    log.info("timing: %s", res["timing"])

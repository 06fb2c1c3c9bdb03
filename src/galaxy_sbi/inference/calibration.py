"""Calibration of posteriors from drawn samples: SBC ranks, TARP (``sbi.diagnostics``) and coverage.

Coverage: for each test case the *credibility level of the truth* is the posterior mass of the
highest-density region whose boundary passes through the truth. For a calibrated posterior these levels are
uniform on [0, 1], so the fraction of cases with level <= c (the empirical coverage of the c-HPD region)
equals c. :func:`empirical_coverage` turns levels into that curve, :func:`coverage_band` gives the binomial
band a calibrated posterior stays inside.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

#: credibility levels at which coverage is measured
COVERAGE_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)


def sbc_uniformity_pvalues(ranks: np.ndarray, n_samples: int) -> np.ndarray:
    """KS p-value of the uniformity of each column of SBC ranks (sbi.diagnostics.sbc.check_uniformity_frequentist)."""
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    return check_uniformity_frequentist(torch.as_tensor(np.asarray(ranks), dtype=torch.float32), n_samples).numpy()


def credibility_gaussian(mean, cov, truth) -> np.ndarray:
    """HPD credibility level of ``truth`` under N(mean, cov): chi2_k CDF of the squared Mahalanobis distance.

    mean, truth (..., k); cov (..., k, k)."""
    mean, truth, cov = np.asarray(mean, float), np.asarray(truth, float), np.asarray(cov, float)
    d = truth - mean
    m2 = np.einsum("...i,...i->...", d, np.linalg.solve(cov, d[..., None])[..., 0])
    return stats.chi2.cdf(m2, df=mean.shape[-1])


def credibility_grid(log_density: np.ndarray, log_density_truth: float, cell_weight=None) -> float:
    """HPD credibility level of the truth for a density on a grid: the mass of cells denser than the truth."""
    logp = np.asarray(log_density, float).ravel()
    w = np.exp(logp - logp.max())
    if cell_weight is not None:
        w = w * np.asarray(cell_weight, float).ravel()
    return float(w[logp > log_density_truth].sum() / w.sum())


def credibility_samples(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-dimension central credibility of the truth from samples (S, N, D) -> (N, D): 2|F(truth) - 1/2|."""
    frac = (np.asarray(samples) < np.asarray(truth)[None]).mean(0)
    return np.abs(2.0 * frac - 1.0)


def empirical_coverage(credibility, levels) -> np.ndarray:
    """Fraction of cases whose truth lies inside the c-credible region, for each nominal level c."""
    cred = np.asarray(credibility, float).ravel()
    return np.array([(cred <= c).mean() for c in np.asarray(levels, float)])


def coverage_band(n: int, levels, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Binomial band of the empirical coverage of ``n`` cases for an exactly calibrated posterior."""
    levels = np.asarray(levels, float)
    lo = stats.binom.ppf((1 - confidence) / 2, n, levels) / n
    hi = stats.binom.ppf(1 - (1 - confidence) / 2, n, levels) / n
    return lo, hi


def cluster_bootstrap_coverage(credibility, groups, levels, n_boot: int = 300, seed: int = 0) -> np.ndarray:
    """Bootstrap replicas (n_boot, L) of the empirical coverage, resampling whole groups with replacement.

    Test cases that share a group (spectra of one SFH in several [M/H] cells) have correlated errors, so the
    coverage of n cases scatters more than the binomial band of n independent cases says; resampling groups
    measures that scatter."""
    cred = np.asarray(credibility, float).ravel()
    levels = np.asarray(levels, float)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_g = g.max() + 1
    # per group: number of cases and number inside each level
    counts = np.bincount(g, minlength=n_g).astype(float)
    inside = np.stack([np.bincount(g, weights=(cred <= c).astype(float), minlength=n_g) for c in levels], 1)
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, n_g, n_g), minlength=n_g) for _ in range(n_boot)]).astype(float)
    return (w @ inside) / (w @ counts)[:, None]


# ---------------------------------------------------------------------------------------------
# sample-based versions (posterior samples already drawn; used by the spectra graph's evaluation)
# ---------------------------------------------------------------------------------------------


class DrawnSamples:
    """Posterior samples already drawn (S, N, D), offered to ``sbi.diagnostics`` as a posterior would be
    (``sample_batched``): its public ``run_sbc`` / ``run_tarp`` then rank these samples instead of redrawing them
    (the spectra graph's samples are labels through a parametrisation, which no sbi posterior gives). The
    "observations" passed to sbi are the case indices (:meth:`xs`)."""

    def __init__(self, samples):
        self.samples = torch.as_tensor(np.asarray(samples), dtype=torch.float32)

    def xs(self) -> torch.Tensor:
        return torch.arange(self.samples.shape[1], dtype=torch.float32)[:, None]

    def sample_batched(self, sample_shape, x, show_progress_bars=False, **kwargs):
        n = int(sample_shape[0])
        if n > self.samples.shape[0]:
            raise ValueError(f"{n} samples asked of {self.samples.shape[0]} drawn")
        return self.samples[:n, x[:, 0].long()]


def sbc_ranks_from_samples(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SBC rank of each true value among its posterior samples: samples (S, N, D), truth (N, D) -> (N, D) in 0..S
    (``sbi.diagnostics.run_sbc``, reduce_fns="marginals", on the drawn samples)."""
    from sbi.diagnostics import run_sbc

    drawn = DrawnSamples(samples)
    ranks, _ = run_sbc(
        torch.as_tensor(np.asarray(truth), dtype=torch.float32),
        drawn.xs(),
        drawn,
        num_posterior_samples=drawn.samples.shape[0],
        reduce_fns="marginals",
        show_progress_bar=False,
    )
    return ranks.numpy().astype(int)


def credibility_hpd_samples(log_q_samples: np.ndarray, log_q_truth: np.ndarray) -> np.ndarray:
    """Joint HPD credibility of the truth from samples: fraction of samples denser than the truth.

    log_q_samples (S, N): the posterior log density at its own samples; log_q_truth (N,) at the truth."""
    return (np.asarray(log_q_samples) > np.asarray(log_q_truth)[None]).mean(0)


def tarp_from_samples(samples: np.ndarray, truth: np.ndarray, seed: int = 0, num_bins: int | None = None) -> dict:
    """TARP (sbi.diagnostics.tarp) from drawn samples (S, N, D) and truths (N, D), z-scored by the truths' range.

    Returns ecp, alpha, ATC and the KS p-value of ``sbi.diagnostics.check_tarp``."""
    from sbi.diagnostics import check_tarp, run_tarp
    from sbi.diagnostics.tarp import get_tarp_references

    torch.manual_seed(seed)
    s = torch.as_tensor(np.asarray(samples), dtype=torch.float32)
    t = torch.as_tensor(np.asarray(truth), dtype=torch.float32)
    lo, hi = t.min(0).values, t.max(0).values
    scale = torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))
    s, t = (s - lo) / scale, (t - lo) / scale
    refs = get_tarp_references(t)
    if num_bins is None:  # sbi's default, N // 10, is zero below ten cases
        num_bins = max(len(t) // 10, 2)
    drawn = DrawnSamples(s)
    ecp, alpha = run_tarp(
        t,
        drawn.xs(),
        drawn,
        references=refs,
        num_posterior_samples=s.shape[0],
        num_bins=num_bins,
        z_score_theta=False,
        show_progress_bar=False,
    )
    atc, ks_p = check_tarp(ecp, alpha)
    return {"ecp": ecp.numpy(), "alpha": alpha.numpy(), "atc": float(atc), "ks_pvalue": float(ks_p)}

"""Calibration code on analytic posteriors: an exactly calibrated Gaussian and an over-confident one."""

import numpy as np

from galaxy_sbi.inference.calibration import (
    COVERAGE_LEVELS,
    coverage_band,
    credibility_samples,
    empirical_coverage,
    sbc_ranks_from_samples,
    sbc_uniformity_pvalues,
    tarp_from_samples,
)


def _gaussian_case(n=1000, s=500, d=2, sigma_post_factor=1.0, seed=0):
    """Prior N(0, 1), likelihood x ~ N(theta, 0.5^2): posterior N(x/1.25, 0.2) exactly (per dimension)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, d))
    x = theta + 0.5 * rng.normal(size=(n, d))
    mean, sd = x / 1.25, np.sqrt(0.2)
    samples = mean[None] + sigma_post_factor * sd * rng.normal(size=(s, n, d))
    return theta, samples


def test_calibrated_gaussian_coverage_is_inside_the_binomial_band():
    theta, samples = _gaussian_case()
    lo, hi = coverage_band(len(theta), COVERAGE_LEVELS, confidence=0.99)
    cred = credibility_samples(samples, theta)
    for k in range(theta.shape[1]):
        cov = empirical_coverage(cred[:, k], COVERAGE_LEVELS)
        # the level of the truth is estimated from 500 samples: allow that resolution on top of the band
        assert np.all(cov >= lo - 0.01) and np.all(cov <= hi + 0.01), cov
    ranks = sbc_ranks_from_samples(samples, theta)
    assert np.all(sbc_uniformity_pvalues(ranks, samples.shape[0]) > 1e-3)
    tarp = tarp_from_samples(samples, theta, seed=1)
    assert abs(tarp["atc"]) < 3.0 and np.max(np.abs(tarp["ecp"] - tarp["alpha"])) < 0.06


def test_overconfident_gaussian_is_flagged():
    theta, samples = _gaussian_case(sigma_post_factor=0.5)  # sigma too small by 2x
    cred = credibility_samples(samples, theta)
    cov = empirical_coverage(cred[:, 0], COVERAGE_LEVELS)
    lo, _ = coverage_band(len(theta), COVERAGE_LEVELS, confidence=0.99)
    # exact: coverage(c) = 2 Phi(z_c / 2) - 1, e.g. 0.68 nominal -> 0.38
    assert np.all(cov[3:] < lo[3:]) and cov[COVERAGE_LEVELS.tolist().index(0.7)] < 0.5
    ranks = sbc_ranks_from_samples(samples, theta)
    assert np.all(sbc_uniformity_pvalues(ranks, samples.shape[0]) < 1e-6)
    tarp = tarp_from_samples(samples, theta, seed=1)
    assert np.max(np.abs(tarp["ecp"] - tarp["alpha"])) > 0.1

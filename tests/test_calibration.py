"""Coverage on analytic cases: an exactly calibrated Gaussian posterior gives nominal coverage, an
over-confident one does not."""

import numpy as np

from galaxy_sbi.inference.calibration import coverage_band, credibility_gaussian, credibility_grid, empirical_coverage

LEVELS = np.linspace(0.05, 0.95, 19)


def _cases(n=4000, shrink=1.0, seed=0):
    """theta ~ N(0, 1), x = theta + N(0, 1): posterior N(x/2, 1/2) (shrink < 1: too narrow)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, 2))
    x = theta + rng.normal(size=(n, 2))
    cov = np.broadcast_to(np.eye(2) * 0.5 * shrink**2, (n, 2, 2))
    return credibility_gaussian(x / 2, cov, theta)


def test_calibrated_gaussian_posterior_has_nominal_coverage():
    cov = empirical_coverage(_cases(), LEVELS)
    lo, hi = coverage_band(4000, LEVELS, confidence=0.999)
    assert np.all((cov >= lo) & (cov <= hi)), cov - LEVELS


def test_overconfident_posterior_undercovers():
    cov = empirical_coverage(_cases(shrink=0.6), LEVELS)
    assert np.all(cov[3:] < LEVELS[3:] - 0.05)


def test_grid_credibility_matches_the_gaussian_one():
    a = np.linspace(-6, 6, 301)
    A, B = np.meshgrid(a, a, indexing="ij")
    logp = -0.5 * (A**2 + B**2)
    truth = np.array([1.0, 0.5])
    grid = credibility_grid(logp, -0.5 * (truth**2).sum())
    exact = credibility_gaussian(np.zeros(2), np.eye(2), truth)
    assert abs(grid - exact) < 5e-3


def test_cluster_bootstrap_widens_the_band_for_correlated_cases():
    """Ten copies of each case: the binomial band of 10n cases is too narrow; the group bootstrap gives back
    the scatter of n independent cases (binomial sd sqrt(c (1 - c) / n))."""
    from galaxy_sbi.inference.calibration import cluster_bootstrap_coverage

    rng = np.random.default_rng(0)
    n = 400
    cred = np.repeat(rng.uniform(size=n), 10)
    groups = np.repeat(np.arange(n), 10)
    levels = np.array([0.2, 0.5, 0.8])
    boot = cluster_bootstrap_coverage(cred, groups, levels, n_boot=2000, seed=1)
    sd = boot.std(0)
    np.testing.assert_allclose(sd, np.sqrt(levels * (1 - levels) / n), rtol=0.15)
    # one case per group: the same as the iid bootstrap, ~sqrt(10) narrower
    iid = cluster_bootstrap_coverage(cred, np.arange(len(cred)), levels, n_boot=2000, seed=1).std(0)
    np.testing.assert_allclose(sd / iid, np.sqrt(10), rtol=0.2)


def test_sbi_diagnostics_rank_the_drawn_samples():
    """SBC ranks and TARP go through sbi's public run_sbc / run_tarp on the samples already drawn (DrawnSamples),
    which must give the plain rank statistic and a calibrated TARP curve for exact posteriors."""
    from scipy import stats

    from galaxy_sbi.inference.calibration import sbc_ranks_from_samples, sbc_uniformity_pvalues, tarp_from_samples

    rng = np.random.default_rng(0)
    mu = rng.normal(size=(400, 2))
    truth = mu + rng.normal(size=mu.shape)  # truth ~ N(mu, 1) and samples ~ N(mu, 1): calibrated
    samples = mu[None] + rng.normal(size=(300, *mu.shape))
    ranks = sbc_ranks_from_samples(samples, truth)
    assert np.array_equal(ranks, (samples < truth[None]).sum(0))
    expected = [stats.kstest(r / 300, "uniform").pvalue for r in ranks.T]
    assert np.allclose(sbc_uniformity_pvalues(ranks, 300), expected, atol=1e-4)
    tarp = tarp_from_samples(samples, truth, seed=1)
    assert abs(tarp["atc"]) < 2.0 and np.abs(tarp["ecp"] - tarp["alpha"]).max() < 0.1
    wide = tarp_from_samples(mu[None] + 3 * rng.normal(size=(300, *mu.shape)), truth, seed=1)
    assert np.mean(wide["ecp"] - wide["alpha"]) > 0.1  # under-confident: coverage above the diagonal

"""The study's Gaussian combination on analytic cases."""

import numpy as np
import pytest

from galaxy_sbi.chem.multistar import combine_gaussian, gaussian_fits


def test_product_of_gaussians_shrinks_as_one_over_sqrt_n():
    means = np.tile([-2.3, -2.89], (100, 1))
    covs = np.broadcast_to(np.diag([0.3**2, 0.2**2]), (100, 2, 2))
    m, c = combine_gaussian(means, covs)
    np.testing.assert_allclose(m, [-2.3, -2.89])
    np.testing.assert_allclose(np.sqrt(np.diag(c)), [0.03, 0.02])


def test_prior_precision_is_added_once():
    m, c = combine_gaussian(np.array([[1.0, 1.0]]), np.eye(2)[None], prior_mean=np.zeros(2), prior_cov=np.eye(2))
    np.testing.assert_allclose(m, [0.5, 0.5])
    np.testing.assert_allclose(c, 0.5 * np.eye(2))


def test_prior_correction_divides_out_the_prior_each_star_holds():
    """Stars with Gaussian likelihoods N(x_i; mu, L^-1): each single-star posterior holds the prior once; the
    corrected product must equal the exact posterior prior x prod_i likelihood_i."""
    rng = np.random.default_rng(0)
    p0, m0 = np.diag([1 / 0.09, 1 / 0.09]), np.array([-2.3, -2.89])
    lik = np.array([[100.0, 20.0], [20.0, 50.0]])
    x = rng.multivariate_normal([-2.25, -2.95], np.linalg.inv(lik), 50)
    post_cov = np.linalg.inv(p0 + lik)
    means = (post_cov @ (p0 @ m0 + x @ lik).T).T
    covs = np.broadcast_to(post_cov, (50, 2, 2))
    m, c = combine_gaussian(means, covs, m0, np.linalg.inv(p0), prior_in_each=True)
    exact_prec = p0 + 50 * lik
    np.testing.assert_allclose(c, np.linalg.inv(exact_prec), rtol=1e-10)
    np.testing.assert_allclose(m, np.linalg.solve(exact_prec, p0 @ m0 + lik @ x.sum(0)), rtol=1e-10)
    # without the correction the prior would count 50 times and pull the mean towards it
    m_wrong, _ = combine_gaussian(means, covs)
    assert np.abs(m_wrong - m0).sum() < np.abs(m - m0).sum()


def test_an_uninformative_star_leaves_the_corrected_product_unchanged():
    p0_cov, m0 = np.diag([0.09, 0.09]), np.array([-2.3, -2.89])
    means, covs = np.array([[-2.2, -2.8]]), np.diag([0.01, 0.02])[None]
    base = combine_gaussian(means, covs, m0, p0_cov, prior_in_each=True)
    # a star whose posterior is wider than the prior (a noisy fit) adds nothing instead of negative precision
    wide = combine_gaussian(
        np.vstack([means, m0]), np.concatenate([covs, 2 * p0_cov[None]]), m0, p0_cov, prior_in_each=True
    )
    np.testing.assert_allclose(wide[1], base[1], rtol=1e-10)
    np.testing.assert_allclose(wide[0], base[0], rtol=1e-10)


def test_gaussian_fits_recover_mean_and_covariance():
    rng = np.random.default_rng(1)
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    s = rng.multivariate_normal([-2.3, -2.9], cov, size=(20000, 3))
    m, c = gaussian_fits(s)
    np.testing.assert_allclose(m, np.tile([-2.3, -2.9], (3, 1)), atol=0.01)
    np.testing.assert_allclose(c, np.broadcast_to(cov, (3, 2, 2)), atol=0.005)


def _gaussian_grid(mean, cov, n=81, width=6.0):
    """A grid posterior dict (as grid_posterior returns) of a 2-D Gaussian."""
    from galaxy_sbi.chem.multistar import _grid

    sd = np.sqrt(np.diag(cov))
    box = np.column_stack([mean - width * sd, mean + width * sd])
    pts, (a, b) = _grid(box, n)
    d = pts - mean
    logp = -0.5 * np.einsum("gi,ij,gj->g", d, np.linalg.inv(cov), d)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    return {
        "mean": w @ pts,
        "cov": np.cov(pts.T, aweights=w, bias=True),
        "points": pts,
        "weights": w,
        "grid_step": np.array([a[1] - a[0], b[1] - b[0]]),
        "credibility": 0.0,
    }


def test_systematic_kernel_adds_its_covariance_and_widens_the_credible_region():
    from scipy import stats

    from galaxy_sbi.chem.multistar import add_systematics

    mean, cov = np.array([-2.3, -2.89]), np.diag([0.003**2, 0.005**2])
    grid = _gaussian_grid(mean, cov)
    same = add_systematics(grid, np.zeros((2, 2)))
    np.testing.assert_array_equal(same["cov"], grid["cov"])
    sys_cov = np.diag([0.006**2, 0.004**2])
    truth = mean + np.array([0.012, 0.0])  # 4 statistical sd off, ~1.8 total sd
    out = add_systematics(grid, sys_cov, truth=truth, n_grid=60)
    np.testing.assert_allclose(np.sqrt(np.diag(out["cov"])), np.sqrt(np.diag(cov + sys_cov)), rtol=0.03)
    m2 = 0.012**2 / out["cov"][0, 0]
    # the convolved density is Gaussian again: HPD credibility = chi2_2 CDF of the Mahalanobis distance
    assert abs(out["credibility"] - stats.chi2.cdf(m2, 2)) < 0.03
    assert out["credibility"] < 0.9  # without the kernel the truth would be far outside (chi2 CDF of 16)


def test_acceptance_model_recovers_a_logistic_acceptance():
    from galaxy_sbi.chem.npe import AcceptanceModel

    rng = np.random.default_rng(3)
    lam = rng.uniform([-3.8, -4.4], [-0.8, -1.4], (40000, 2))
    eta = 1.5 + 2.0 * (lam[:, 0] + 2.3) - 0.5 * (lam[:, 1] + 2.89) ** 2
    acc = rng.uniform(size=len(lam)) < 1 / (1 + np.exp(-eta))
    m = AcceptanceModel.fit(lam, acc, centre=[-2.3, -2.89], scale=[0.3, 0.3])
    pts = np.array([[-2.3, -2.89], [-2.9, -2.89], [-1.7, -3.5]])
    true = -np.logaddexp(0, -(1.5 + 2.0 * (pts[:, 0] + 2.3) - 0.5 * (pts[:, 1] + 2.89) ** 2))
    np.testing.assert_allclose(m.log_p(pts), true, atol=0.03)
    again = AcceptanceModel.from_dict(m.to_dict())
    np.testing.assert_allclose(again.log_p(pts), m.log_p(pts))
    assert np.all(AcceptanceModel().log_p(pts) == 0)  # no model: no term


def test_robust_systematic_cov_recovers_the_kernel_and_drops_a_tail_outlier():
    from galaxy_sbi.chem.multistar import robust_systematic_cov

    rng = np.random.default_rng(5)
    sys_cov = np.array([[0.008**2, 0.5 * 0.008 * 0.012], [0.5 * 0.008 * 0.012, 0.012**2]])
    stat = np.diag([0.003**2, 0.005**2])
    d = rng.multivariate_normal([0, 0], sys_cov + stat, size=400)
    d[0] = [0.05, 0.19]  # a galaxy in the far tail of the prior
    est, inlier = robust_systematic_cov(d, np.broadcast_to(stat, (400, 2, 2)))
    assert not inlier[0] and inlier.mean() > 0.97
    np.testing.assert_allclose(np.sqrt(np.diag(est)), [0.008, 0.012], rtol=0.15)
    none, _ = robust_systematic_cov(rng.multivariate_normal([0, 0], stat, size=400), np.broadcast_to(stat, (400, 2, 2)))
    assert np.all(np.sqrt(np.diag(none)) < 0.0015)  # no systematic error: (almost) no kernel


def test_coarse_zoom_stages_give_the_full_grid_posterior(monkeypatch):
    """n_coarse: the zoom stages on a coarse grid, the last on the full one: same mean, sd and credibility,
    far fewer (NPE) evaluations."""
    from galaxy_sbi.chem import multistar
    from galaxy_sbi.chem.priors import Priors

    priors = Priors.from_config(
        {
            "mean": [-2.3, -2.89, -0.3, 0.55, 0.5],
            "sigma": [0.3, 0.3, 0.3, 0.1, 0.1],
            "birth_time_gyr": [1.0, 13.8],
            "uniform_width_sigma": 5,
        }
    )
    centre, sd_star = np.array([-2.25, -2.95]), np.array([0.08, 0.13])
    n_eval = []

    def fake_log_prob_grid(posterior, x, pts, **kw):  # each star: a Gaussian likelihood around its own centre
        n_eval.append(len(x) * len(pts))
        return -0.5 * (((pts[None] - x[:, None, :2]) / sd_star) ** 2).sum(-1)

    monkeypatch.setattr(multistar, "log_prob_grid", fake_log_prob_grid)
    x = centre + np.random.default_rng(0).normal(0, 1, (1000, 2)) * sd_star
    truth = centre + 0.5 * sd_star / np.sqrt(len(x))
    full = multistar.grid_posterior(None, x, priors, n_grid=40, truth=truth)
    n_full, n_eval[:] = sum(n_eval), []
    coarse = multistar.grid_posterior(None, x, priors, n_grid=40, truth=truth, n_coarse=12)
    sd = np.sqrt(np.diag(full["cov"]))
    np.testing.assert_allclose(sd, sd_star / np.sqrt(len(x)), rtol=0.05)
    np.testing.assert_allclose(coarse["mean"], full["mean"], atol=0.02 * sd.min())
    np.testing.assert_allclose(np.sqrt(np.diag(coarse["cov"])), sd, rtol=0.01)
    assert abs(coarse["credibility"] - full["credibility"]) < 0.03
    assert sum(n_eval) < 0.5 * n_full


def test_pull_summary_passes_a_calibrated_method_and_fails_an_over_confident_one(rng):
    from galaxy_sbi.chem.multistar import pull_summary

    n = 400
    truths = rng.normal([-2.3, -2.89], 0.3, (n, 2))
    sd = np.full((n, 2), 0.01)
    means = truths + rng.normal(0, 1, (n, 2)) * sd
    ok = pull_summary(truths, means, sd)["log10_N_Ia"]
    assert ok["mean_abs_pull"] == pytest.approx(np.sqrt(2 / np.pi), abs=0.08)  # E|N(0,1)|
    assert ok["within_band_68"] and ok["within_band_95"] and ok["n_galaxies"] == n
    bad = pull_summary(truths, means, sd / 3)["log10_N_Ia"]
    assert bad["mean_abs_pull"] > 2 and not bad["within_band_68"] and not bad["within_band_95"]


def test_age_weights_condition_the_samples_on_the_observed_birth_time(rng):
    from galaxy_sbi.chem.multistar import age_weights

    s = np.zeros((4000, 3, 6))
    s[..., 0] = rng.normal(0, 1, (4000, 3))
    s[..., 5] = s[..., 0] + rng.normal(0, 1, (4000, 3))  # birth time correlated with alpha (corr 0.71)
    obs = np.array([[2.0, 0.5], [-1.0, 0.5], [np.nan, np.nan]])
    w = age_weights(s, obs)
    np.testing.assert_allclose(w.sum(0), 1.0)
    mean, cov = gaussian_fits(s, w)
    # Gaussian conjugacy: t ~ N(0, 2), t_obs | t ~ N(t, 0.25): E[alpha | t_obs] = t_obs / 2 * 2 / 2.25
    assert mean[0, 0] == pytest.approx(2.0 * (1 / 2.25), abs=0.06) and mean[1, 0] == pytest.approx(-1 / 2.25, abs=0.06)
    assert cov[0, 0, 0] < 0.7 and w[:, 2] == pytest.approx(1 / 4000)  # the star without an age keeps equal weights
    np.testing.assert_allclose(gaussian_fits(s[:, 2:], w[:, 2:])[0], gaussian_fits(s[:, 2:])[0], atol=1e-12)

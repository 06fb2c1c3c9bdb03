"""The study's Gaussian combination on analytic cases."""

import numpy as np

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


def test_gaussian_fits_recover_mean_and_covariance():
    rng = np.random.default_rng(1)
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    s = rng.multivariate_normal([-2.3, -2.9], cov, size=(20000, 3))
    m, c = gaussian_fits(s)
    np.testing.assert_allclose(m, np.tile([-2.3, -2.9], (3, 1)), atol=0.01)
    np.testing.assert_allclose(c, np.broadcast_to(cov, (3, 2, 2)), atol=0.005)

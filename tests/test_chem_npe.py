"""NPE on a linear-Gaussian toy: the sampled posterior is near the analytic one; priors stay in their box."""

import numpy as np
import torch

from galaxy_sbi.chem.npe import log_prob_grid, sample, train_npe
from galaxy_sbi.chem.priors import Priors

PRIORS = Priors(np.array([-2.3, -2.89, -0.3, 0.55, 0.5]), np.array([0.3, 0.3, 0.3, 0.1, 0.1]), (1.0, 13.8), 5)


def test_priors_boxes_and_draws():
    rng = np.random.default_rng(0)
    u = PRIORS.draw_uniform(1000, rng)
    assert np.all((u >= PRIORS.low) & (u <= PRIORS.high))
    assert PRIORS.low[4] == 0.0 and PRIORS.high[4] == 1.0
    pop = PRIORS.draw_population(5000, rng, global_values=[-2.3, -2.89])
    assert np.all(pop[:, 0] == -2.3) and abs(pop[:, 2].std() - 0.3) < 0.02


def test_npe_on_a_toy_problem():
    from sbi.utils import BoxUniform

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    theta = rng.uniform(-1, 1, (3000, 2))
    x = np.column_stack([theta, theta.sum(1)]) + rng.normal(0, 0.05, (3000, 3))
    prior = BoxUniform(-torch.ones(2), torch.ones(2))
    post, summary = train_npe(theta, x, prior, hidden_features=16, num_transforms=2, max_epochs=30)
    obs = np.array([[0.2, -0.3, -0.1]])
    s = sample(post, obs, 500)
    assert s.shape == (500, 1, 2)
    assert np.all(np.abs(s.mean(0)[0] - [0.2, -0.3]) < 0.15)  # 30 epochs: roughly trained
    grid = np.array([[0.2, -0.3], [0.9, 0.9]])
    lp = log_prob_grid(post, obs, grid)
    assert lp.shape == (1, 2) and lp[0, 0] > lp[0, 1]


def test_global_training_set_from_the_simulator_keeps_accepted_sets_and_fits_the_acceptance():
    """source=simulator: only accepted sets, Lambda in the box, locals from the population prior, and an
    acceptance model that rises with alpha_IMF (measured: ~50 % at -2.9, ~93 % at -1.7)."""
    from galaxy_sbi.chem.datasets import load_yields
    from galaxy_sbi.chem.npe import training_set

    rng = np.random.default_rng(0)
    theta, x, info = training_set(
        None,
        PRIORS,
        1500,
        0.05,
        rng,
        kind="global",
        source="simulator",
        yields=load_yields({"source": "vice", "preset": "tng_like", "directory": None}),
    )
    assert theta.shape == (1500, 2) and x.shape == (1500, 8) and np.isfinite(x).all()
    assert np.all((theta >= PRIORS.low[:2]) & (theta <= PRIORS.high[:2]))
    lp = info["acceptance"].log_p(np.array([[-2.9, -2.89], [-2.3, -2.89], [-1.7, -2.89]]))
    assert np.all(lp <= 0) and lp[0] < lp[1] < lp[2]
    assert 0.3 < np.exp(lp[0]) < 0.7 and np.exp(lp[2]) > 0.8


def test_joint_training_set_draws_from_the_chosen_prior():
    """population: the joint NPE learns the population posterior (its draws follow N(mean, sigma)); box: uniform."""
    import pytest

    from galaxy_sbi.chem.npe import training_set

    emulator = torch.nn.Linear(6, 8)
    rng = np.random.default_rng(1)
    theta, x, _ = training_set(emulator, PRIORS, 20000, 0.05, rng, kind="joint", joint_prior="population")
    assert theta.shape == (20000, 6) and x.shape == (20000, 8)
    np.testing.assert_allclose(theta[:, :4].mean(0), PRIORS.mean[:4], atol=0.01)
    np.testing.assert_allclose(theta[:, :4].std(0), PRIORS.sigma[:4], rtol=0.03)
    box, _, _ = training_set(emulator, PRIORS, 20000, 0.05, rng, kind="joint", joint_prior="box")
    np.testing.assert_allclose(box[:, 0].std(), (PRIORS.high[0] - PRIORS.low[0]) / np.sqrt(12), rtol=0.03)
    with pytest.raises(ValueError, match="joint NPE prior"):
        training_set(emulator, PRIORS, 10, 0.05, rng, kind="joint", joint_prior="gaussian")

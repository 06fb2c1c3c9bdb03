"""emcee on the emulator's hierarchical posterior: convergence by the autocorrelation rule, the scaling fit."""

import numpy as np
import pytest
import torch

from galaxy_sbi.chem.mcmc import emcee_converged, scaling_fit
from galaxy_sbi.chem.priors import Priors

PRIORS = Priors.from_config(
    {
        "mean": [-2.3, -2.89, -0.3, 0.55, 0.5],
        "sigma": [0.3, 0.3, 0.3, 0.1, 0.1],
        "birth_time_gyr": [1.0, 13.8],
        "uniform_width_sigma": 5,
    }  # fmt: skip
)


class LinearEmulator(torch.nn.Module):
    """8 abundances linear in the six parameters: a posterior emcee can sample quickly."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(6, 8, generator=g) * torch.tensor([1.0, 1.0, 0.5, 0.5, 0.5, 0.05])[:, None]

    def forward(self, theta):
        return theta @ self.w


@pytest.mark.parametrize("moves", ["de", "stretch"])
def test_emcee_runs_to_fifty_autocorrelation_times_and_finds_the_globals(rng, moves):
    emu = LinearEmulator()
    truth = np.array([-2.2, -2.95])
    theta = PRIORS.draw_population(1, rng, truth)
    obs = (emu(torch.as_tensor(theta, dtype=torch.float32)).numpy() + rng.normal(0, 0.05, (1, 8))).astype(float)
    out = emcee_converged(emu, obs, PRIORS, 0.05, rng, chunk=200, max_steps=20000, moves=moves)
    assert out["converged"] and out["moves"] == moves and out["autocorr_checks_s"] < out["wall_s"]
    assert out["dim"] == 2 + 4 and out["n_walkers"] >= 2 * out["dim"] + 2
    assert np.all(np.abs(np.array(out["estimate_mean"]) - truth) < 4 * np.array(out["estimate_sd"]) + 0.02)


def test_scaling_fit_recovers_a_power_law():
    n = np.array([1, 3, 10, 30])
    fit = scaling_fit(n, 2.0 * n**1.7)
    assert fit["exponent"] == pytest.approx(1.7) and fit["prefactor_s"] == pytest.approx(2.0)
    assert fit["extrapolated_1000_stars_s"] == pytest.approx(2.0 * 1000**1.7) and not fit["lower_bound"]
    # a run stopped at the step cap is not fitted: its time is a lower bound
    capped = scaling_fit(n, np.append(2.0 * n[:3] ** 1.7, 5.0), converged=[True, True, True, False])
    assert capped["exponent"] == pytest.approx(1.7) and capped["fitted_star_counts"] == [1, 3, 10]
    assert scaling_fit(n, 2.0 * n**1.7, converged=[True, False, False, False])["lower_bound"]


def test_a_capped_run_is_projected_to_the_rule():
    from galaxy_sbi.chem.mcmc import scalings

    rows = [
        {"n_stars": 1, "wall_s": 2.0, "converged": True, "tau_max": 10.0, "steps": 600},
        {"n_stars": 10, "wall_s": 50.0, "converged": False, "tau_max": 1000.0, "steps": 5000},
    ]
    out = scalings(rows, min_tau_multiples=50)
    assert out["rows"][0]["projected_s"] == 2.0 and out["rows"][1]["projected_s"] == pytest.approx(
        50.0 * 55 * 1000 / 5000
    )
    assert out["emcee_scaling"]["lower_bound"] and out["emcee_scaling_projected"]["fitted_star_counts"] == [1, 10]


def test_emcee_moves_by_name():
    import emcee

    from galaxy_sbi.inference.mcmc import emcee_moves

    assert emcee_moves("stretch") is None  # emcee's default
    assert {type(m) for m, _ in emcee_moves("de")} == {emcee.moves.DEMove, emcee.moves.DESnookerMove}
    with pytest.raises(ValueError, match="'de' or 'stretch'"):
        emcee_moves("hmc")

"""SFH families: percentiles against closed forms, normalisation, and the dense_basis family."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from galaxy_sbi.spectra import sfh

PARAMETRIC = {
    "time_gyr": {"start": 0.0, "stop": 14.0, "step": 0.01},
    "t0_gyr": {"start": 0.0, "stop": 5.0, "step": 0.05},
    "log10_tau_gyr": {"start": -0.5, "stop": 0.7, "step": 0.012},
    "thin": 1,
}


def test_constant_sfr_percentiles_are_exact():
    time = sfh.linear_grid(0.0, 14.0, 0.01)
    cum = sfh.cumulative_from_sfr(time, np.ones((1, time.size)))
    got = sfh.percentile_times(time, cum)
    np.testing.assert_allclose(got[0], 14.0 * np.arange(1, 10) / 10, atol=1e-12)


def test_boxcar_starting_between_nodes_is_not_quantised():
    """Constant SFR from t_s = 3.337 Gyr (between nodes): t_q = t_s + q (t_obs - t_s), to round-off."""
    time = sfh.linear_grid(0.0, 14.0, 0.01)
    t_s = 3.337
    cum = np.clip((time - t_s) / (14.0 - t_s), 0, 1)[None, :]
    got = sfh.percentile_times(time, cum)[0]
    np.testing.assert_allclose(got, t_s + np.arange(1, 10) / 10 * (14.0 - t_s), atol=1e-9)


def _linexp_percentile(q, t0, tau, t_obs=14.0):
    shape = lambda t: -np.expm1(-(t - t0) / tau) - (t - t0) / tau * np.exp(-(t - t0) / tau)  # noqa: E731
    total = shape(t_obs)
    return brentq(lambda t: shape(t) - q * total, t0, t_obs, xtol=1e-13)


def test_linear_exponential_percentiles_match_the_closed_form():
    ds = sfh.make_parametric({**PARAMETRIC, "thin": 20}, 1e10)
    assert ds.sizes["sfh"] == 6 * 6
    for i in range(ds.sizes["sfh"]):
        t0, tau = float(ds.t0[i]), float(ds.tau[i])
        expected = [_linexp_percentile(p / 100, t0, tau) for p in ds.percentile.values]
        np.testing.assert_allclose(ds.percentiles.values[i], expected, atol=2e-4, rtol=0)
    # not quantised to the 0.01 Gyr step
    frac = np.abs(ds.percentiles.values / 0.01 - np.round(ds.percentiles.values / 0.01))
    assert np.median(frac) > 0.05


def test_linexp_percentiles_and_their_inverse():
    """The bisection percentiles equal the files' labels (interpolated on 0.01 Gyr nodes) to 1e-4 Gyr, and the
    (t0, tau) fitted to those labels are the grid's."""
    ds = sfh.make_parametric({**PARAMETRIC, "thin": 10}, 1e10)
    t0, tau, labels = ds.t0.values, ds.tau.values, ds.percentiles.values
    exact = sfh.linexp_percentiles(t0, tau, 0.0, 14.0)
    np.testing.assert_allclose(exact, labels, atol=1e-4, rtol=0)
    assert np.all(np.diff(exact, axis=1) > 0)
    f_t0, f_tau = sfh.linexp_parameters(labels, 0.0, 14.0)
    np.testing.assert_allclose(f_t0, t0, atol=1e-3)
    np.testing.assert_allclose(np.log10(f_tau), np.log10(tau), atol=1e-3)
    e_t0, e_tau = sfh.linexp_parameters(exact, 0.0, 14.0)
    np.testing.assert_allclose(e_t0, t0, atol=1e-8)
    np.testing.assert_allclose(e_tau, tau, rtol=1e-8)
    # no mass before t_obs: no percentiles
    assert np.isnan(sfh.linexp_percentiles([14.5], [1.0], 0.0, 14.0)).all()


def test_parametric_grid_is_the_seeds_and_mass_is_normalised():
    time, t0, tau = sfh.parametric_grid(PARAMETRIC)
    assert time.size == 1401 and time[-1] == 14.0
    assert t0.size == tau.size == 101 * 101
    assert np.isclose(t0.max(), 5.0) and np.isclose(tau.min(), 10**-0.5) and np.isclose(tau.max(), 10**0.7)
    ds = sfh.make_parametric({**PARAMETRIC, "thin": 10}, 1e10)
    cum = ds.cumulative_mass_fraction.values
    assert np.all(np.diff(cum, axis=1) >= 0) and np.all(cum[:, 0] == 0) and np.all(cum[:, -1] == 1)
    mass = np.trapezoid(ds.sfr.values.astype(float), ds.time.values * 1e9, axis=1)
    np.testing.assert_allclose(mass, 1e10, rtol=1e-3)  # trapezoid of the node SFR vs the exact integral
    assert ds.attrs["time_convention"] == sfh.TIME_CONVENTION
    assert ds.attrs["t_obs_gyr"] == 14.0
    assert list(ds.label_name.values) == [f"t{p}" for p in range(10, 100, 10)]


def test_percentiles_handle_flat_stretches_and_are_monotone():
    time = np.linspace(0, 10, 101)
    sfr = np.zeros((1, 101))
    sfr[0, 10:20] = 1.0
    sfr[0, 80:90] = 1.0  # two bursts: 50 % lands at the end of the first one
    cum = sfh.cumulative_from_sfr(time, sfr)
    got = sfh.percentile_times(time, cum, [10, 50, 90])[0]
    assert np.all(np.diff(got) > 0)
    assert got[1] == pytest.approx(time[np.argmax(cum[0] >= 0.5)], abs=1e-9)


NONPARAMETRIC = {"n_per_cell": 8, "n_tx": 3, "tx_alpha": 5.0, "log_ssfr_range": [-12.0, -7.5]}


@pytest.fixture(scope="module")
def dense_basis_set():
    return sfh.make_nonparametric(NONPARAMETRIC, 1e10, seed=7, progress=False)


def test_dense_basis_family(dense_basis_set):
    ds = dense_basis_set
    assert ds.sizes["sfh"] == 8 and ds.sizes["time"] == 1000
    assert ds.attrs["t_obs_gyr"] == pytest.approx(13.467, abs=2e-3)
    assert ds.time.values[0] == 0.0
    mass = np.trapezoid(ds.sfr.values.astype(float), ds.time.values * 1e9, axis=1)
    np.testing.assert_allclose(mass, 1e10, rtol=1e-6)
    # labels are recomputed from the returned SFH, not taken from the tuple
    cum = sfh.cumulative_from_sfr(ds.time.values, ds.sfr.values)
    np.testing.assert_allclose(ds.percentiles.values, sfh.percentile_times(ds.time.values, cum), atol=1e-4)
    assert np.all(np.diff(ds.percentiles.values, axis=1) >= 0)


def test_dense_basis_distinct_sfhs_per_cell():
    cells = ["m-0.20", "m+0.00"]
    ds = sfh.make_nonparametric(
        {**NONPARAMETRIC, "n_per_cell": 3, "per_cell": "distinct"}, 1e10, 7, cells=cells, progress=False
    )
    assert ds.sizes["sfh"] == 6
    assert list(ds.cell.values) == ["m-0.20"] * 3 + ["m+0.00"] * 3
    assert len(np.unique(ds.percentiles.values[:, 4])) == 6  # six different SFHs
    shared = sfh.make_nonparametric(
        {**NONPARAMETRIC, "n_per_cell": 3, "per_cell": "shared"}, 1e10, 7, cells=cells, progress=False
    )
    assert shared.sizes["sfh"] == 3 and "cell" not in shared.coords
    with pytest.raises(ValueError, match="needs the spectra cells"):
        sfh.make_nonparametric({**NONPARAMETRIC, "per_cell": "distinct"}, 1e10, 7)


def test_dense_basis_same_seed_same_set_in_parallel(dense_basis_set):
    again = sfh.make_nonparametric(NONPARAMETRIC, 1e10, seed=7, processes=2, progress=False)
    np.testing.assert_array_equal(again.sfr.values, dense_basis_set.sfr.values)
    other = sfh.make_nonparametric({**NONPARAMETRIC, "n_per_cell": 3}, 1e10, seed=8, progress=False)
    assert not np.allclose(other.sfr.values, dense_basis_set.sfr.values[:3])

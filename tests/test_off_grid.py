"""Off-grid test sets: continuous [M/H] (and [alpha/Fe]) between native SSPs, continuous SFH truths, the degraded
settings, and continuous truths judged without dequantisation."""

from __future__ import annotations

import numpy as np
import pytest
from test_synth import PARAMETRIC, SPECTRA, fake_ssps

from galaxy_sbi.errors import InputError
from galaxy_sbi.spectra import off_grid, sfh, synth
from galaxy_sbi.spectra.evaluation import degraded_settings, setting_name
from galaxy_sbi.spectra.ssp import interpolate_library

SFH_CFG = {
    "stellar_mass": 1e10,
    "percentiles": [10, 20, 30, 40, 50, 60, 70, 80, 90],
    "parametric": PARAMETRIC,
    "nonparametric": {"n_per_cell": 8, "n_tx": 3, "tx_alpha": 1.0, "log_ssfr_range": [-14.0, -9.5]},
}


def _weights(library, n=6, seed=0):
    s = sfh.make_parametric(PARAMETRIC, 1e10).isel(sfh=slice(0, n))
    w = synth.native_weights(s.time.values, s.cumulative_mass_fraction.values, library.age.values)[0]
    return s, w


def test_a_spectrum_at_any_metallicity_is_the_native_libraries_linear_interpolation():
    library = fake_ssps(n_met=3)  # native [M/H] -0.2, -0.1, 0.0
    _, w = _weights(library)
    mets = np.array([-0.2, -0.17, -0.1, -0.06, -0.03, 0.0])
    flux, norm = off_grid.continuous_spectra(w, library, mets, normalisation="none")
    for i, m in enumerate(mets):
        cell = interpolate_library(library, [m])["flux"].isel(metallicity=0).transpose("age", "wavelength").values
        np.testing.assert_allclose(flux[i], w[i] @ cell, rtol=2e-6)
    assert np.all(norm == 1.0)
    with pytest.raises(InputError, match="outside the SSP library"):
        off_grid.continuous_spectra(w[:1], library, np.array([0.3]))


def test_with_an_alpha_axis_the_interpolation_is_bilinear():
    library = fake_ssps(n_met=2, n_alpha=3)
    _, w = _weights(library, n=3)
    mets, alphas = np.array([-0.15, -0.2, -0.01]), np.array([0.33, 0.2, 0.05])
    flux, _ = off_grid.continuous_spectra(w, library, mets, alphas)
    for i in range(3):
        cell = interpolate_library(library, [mets[i]], [alphas[i]])["flux"].isel(metallicity=0, alpha=0)
        model = w[i] @ cell.transpose("age", "wavelength").values
        np.testing.assert_allclose(flux[i], model / np.median(model), rtol=2e-6)
    with pytest.raises(InputError, match="alpha"):
        off_grid.continuous_spectra(w, library, mets)


@pytest.mark.parametrize("family", ["parametric", "nonparametric"])
def test_the_off_grid_set_has_no_truth_on_the_training_lattice(family):
    library = fake_ssps(n_met=3)
    interpolate = {"metallicities": [-0.2, -0.1, 0.0], "alphas": [0.0]}
    ds = off_grid.off_grid_set(family, SFH_CFG, library, interpolate, SPECTRA, 30, seed=3)
    labels = ds.labels.values
    assert ds.flux.shape == (30, library.wavelength.size) and np.allclose(np.median(ds.flux, axis=1), 1.0, atol=1e-6)
    assert list(ds.parameter.values) == [f"t{p}" for p in range(10, 100, 10)] + ["metallicity"]
    mh = labels[:, 9]
    assert mh.min() >= -0.2 and mh.max() <= 0.0
    assert np.min(np.abs(mh[:, None] - np.array(interpolate["metallicities"])[None]), axis=1).min() > 1e-6
    assert np.all(np.diff(labels[:, :9], axis=1) >= 0)
    if family == "parametric":
        t0_lattice = sfh.parametric_grid(PARAMETRIC)[1]
        assert np.min(np.abs(ds.t0.values[:, None] - np.unique(t0_lattice)[None]), axis=1).min() > 1e-9
        # the labels are the closed-form percentiles of the drawn (t0, tau)
        closed = sfh.linexp_percentiles(ds.t0.values, ds.tau.values, 0.0, 14.0, SFH_CFG["percentiles"])
        np.testing.assert_allclose(labels[:, :9], closed, atol=0.011)
    else:  # fresh draws: none is a training SFH
        train = sfh.make_nonparametric(SFH_CFG["nonparametric"], 1e10, seed=3, progress=False)
        d = np.abs(labels[:, None, :9] - train.percentiles.values[None]).max(axis=2)
        assert d.min() > 1e-3
    # seeded: the same set again
    again = off_grid.off_grid_set(family, SFH_CFG, library, interpolate, SPECTRA, 30, seed=3)
    np.testing.assert_array_equal(again.flux.values, ds.flux.values)


def test_a_draw_on_a_cell_reproduces_the_cube():
    library = fake_ssps(n_met=3)
    s, w = _weights(library)
    grid = interpolate_library(library, [-0.1])
    cube = synth.build_cell(s, grid, "m-0.10", SPECTRA, seed=0)
    flux, _ = off_grid.continuous_spectra(w, library, np.full(len(w), -0.1), stellar_mass=1e10)
    np.testing.assert_allclose(flux, cube.flux.values, rtol=1e-5)


def test_the_degraded_settings_are_every_snr_sigma_and_mask():
    settings = degraded_settings({"snr": [20, 50], "sigma_kms": [100, 250]})
    assert len(settings) == 8
    assert {(s["snr"], s["sigma_kms"], s["blue_mask"]) for s in settings} == {
        (a, b, m) for a in (20.0, 50.0) for b in (100.0, 250.0) for m in (False, True)
    }
    assert "masked" in setting_name({**settings[1], "blue_mask_below": 3800.0})


def test_continuous_cells_draw_metallicity_within_the_cell_from_the_native_models():
    library = fake_ssps(n_met=3)  # native -0.2, -0.1, 0.0
    s, w = _weights(library, n=40)
    grid = interpolate_library(library, [-0.2, -0.1, 0.0])
    cfg = {**SPECTRA, "metallicity_sampling": "continuous"}
    cube = synth.build_cell(s, grid, "m-0.10", cfg, seed=4, library=library)
    mh = cube.labels.values[:, 9]
    assert mh.min() >= -0.15 and mh.max() <= -0.05 and np.ptp(mh) > 0.05  # the cell: half-way to the neighbours
    edge = synth.build_cell(s, grid, "m+0.00", cfg, seed=4, library=library).labels.values[:, 9]
    assert edge.min() >= -0.05 and edge.max() <= 0.0  # an end cell stops at the grid's end
    flux, _ = off_grid.continuous_spectra(w, library, mh, stellar_mass=1e10)
    np.testing.assert_allclose(cube.flux.values, flux, rtol=1e-6)
    assert float(cube.metallicity) == -0.1 and "continuous" in cube.attrs["metallicity_sampling"]
    with pytest.raises(ValueError, match="native SSP library"):
        synth.build_cell(s, grid, "m-0.10", cfg, seed=4)


def test_continuous_parametric_sfhs_are_stratified_within_the_lattice_cells():
    cfg = {**PARAMETRIC, "sampling": "continuous"}
    _, t0_lattice, tau_lattice = sfh.parametric_grid(PARAMETRIC)
    _, t0, tau = sfh.parametric_grid(cfg, seed=9)
    nodes = np.unique(t0_lattice)
    half = 0.5 * np.diff(nodes).max()
    assert np.all(np.abs(t0 - t0_lattice) <= half + 1e-12) and np.all(t0 >= 0) and np.all(t0 <= nodes[-1])
    assert np.min(np.abs(t0[:, None] - nodes[None]), axis=1).max() > 1e-3  # off the lattice
    step = 0.5 * np.diff(np.unique(np.log10(tau_lattice))).max()
    assert np.all(np.abs(np.log10(tau) - np.log10(tau_lattice)) <= step + 1e-12)
    np.testing.assert_array_equal(sfh.parametric_grid(cfg, seed=9)[1], t0)
    with pytest.raises(ValueError, match="seed"):
        sfh.parametric_grid(cfg)

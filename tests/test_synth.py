"""The forward model: folded fast path == brute force, weights, cells, split, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from galaxy_sbi.errors import InputError
from galaxy_sbi.spectra import sfh, synth
from galaxy_sbi.spectra.ssp import MILES_WAVELENGTH, ssp_dataset

MILES_AGES = [
    0.03,
    0.04,
    0.05,
    0.06,
    0.07,
    0.08,
    0.09,
    0.10,
    0.15,
    0.20,
    0.25,
    0.30,
    0.35,
    0.40,
    0.45,
    0.50,
    0.60,
    0.70,
    0.80,
    0.90,
    1.00,
    1.25,
    1.50,
    1.75,
    2.00,
    2.25,
    2.50,
    2.75,
    3.00,
    3.25,
    3.50,
    3.75,
    4.00,
    4.50,
    5.00,
    5.50,
    6.00,
    6.50,
    7.00,
    7.50,
    8.00,
    8.50,
    9.00,
    9.50,
    10.00,
    10.50,
    11.00,
    11.50,
    12.00,
    12.50,
    13.00,
    13.50,
    14.00,
]
PARAMETRIC = {
    "time_gyr": {"start": 0.0, "stop": 14.0, "step": 0.01},
    "t0_gyr": {"start": 0.0, "stop": 5.0, "step": 0.05},
    "log10_tau_gyr": {"start": -0.5, "stop": 0.7, "step": 0.012},
    "thin": 25,
}
SPECTRA = {
    "split": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "normalisation": "median",
    "age_edges": "clamp",
    "chunk_samples": 16,
    "complevel": 1,
}


def fake_ssps(n_met=2, n_alpha=None, seed=0):
    """Positive SSP-like spectra (Lsun/A/Msun scale) on the MILES ages and wavelengths."""
    rng = np.random.default_rng(seed)
    ages = np.asarray(MILES_AGES)
    wave = MILES_WAVELENGTH
    shape = ((n_alpha,) if n_alpha else ()) + (n_met, ages.size, wave.size)
    slope = np.log10(ages)[:, None] * (wave[None, :] / 5000 - 1)
    flux = 1e-4 * np.exp(-slope) / ages[:, None] ** 0.8 * (1 + 0.2 * rng.random(shape))
    return ssp_dataset(
        flux,
        ages,
        np.linspace(-0.2, 0.0, n_met),
        wave,
        alphas=np.linspace(0, 0.4, n_alpha) if n_alpha else None,
        attrs={"source": "fake"},
    )


@pytest.fixture(scope="module")
def parametric():
    return sfh.make_parametric(PARAMETRIC, 1e10)


def random_cumulative(n, n_time, rng):
    sfr = rng.gamma(0.3, size=(n, n_time))
    sfr[:, :3] = 0
    return sfh.cumulative_from_sfr(np.arange(n_time), sfr)


def test_interpolation_matrix_is_exact_on_native_ages_and_clamps():
    native = np.asarray(MILES_AGES)
    A, below, above = synth.interpolation_matrix(np.r_[native, 0.005, 14.5, 0.125], native)
    np.testing.assert_allclose(A[: native.size], np.eye(native.size), atol=1e-12)
    np.testing.assert_allclose(A.sum(axis=1), 1.0)
    assert A[native.size, 0] == 1.0 and A[native.size + 1, -1] == 1.0
    assert A[-1, 7] == pytest.approx(0.5) and A[-1, 8] == pytest.approx(0.5)  # 0.125 between 0.10 and 0.15
    assert below.tolist()[-3:] == [True, False, False] and above.tolist()[-3:] == [False, True, False]


def test_mass_weights_sum_to_one(parametric):
    W, below, above = synth.native_weights(
        parametric.time.values, parametric.cumulative_mass_fraction.values, MILES_AGES, 14.0
    )
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(W >= 0)
    dM = synth.mass_weights(parametric.cumulative_mass_fraction.values)
    np.testing.assert_allclose(dM.sum(axis=1), 1.0, atol=1e-12)
    # the youngest bin centre is 0.005 Gyr old: below the 0.03 Gyr SSP, clamped and counted
    assert np.all(below >= 0) and below.max() > 0 and np.all(above == 0)


@pytest.mark.parametrize("family", ["parametric", "dense_basis_like"])
def test_fast_forward_model_equals_brute_force(parametric, family):
    grid = fake_ssps()
    S = grid.flux.isel(metallicity=0).values
    if family == "parametric":
        time, cum, t_obs = parametric.time.values, parametric.cumulative_mass_fraction.values[::3], 14.0
    else:  # dense_basis's grid: 1000 nodes to 13.47 Gyr, irregular bursty SFHs
        time = np.linspace(0, 13.467, 1000)
        cum, t_obs = random_cumulative(6, time.size, np.random.default_rng(3)), 13.467
    W, _, _ = synth.native_weights(time, cum, MILES_AGES, t_obs)
    fast, norm = synth.forward(W, S, normalise="none")
    assert fast.dtype == np.float32 and np.all(norm == 1)
    for i in range(len(cum)):
        reference = synth.brute_force_spectrum(time, cum[i], MILES_AGES, S, t_obs)
        np.testing.assert_allclose(fast[i], reference, rtol=2e-7, atol=0)  # float32 rounding of the result
    # median normalisation keeps the factor: flux * norm = M_tot * spectrum
    flux, norm = synth.forward(W, S, normalise="median", stellar_mass=1e10)
    np.testing.assert_allclose(np.median(flux, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(flux * norm[:, None], 1e10 * fast, rtol=1e-6)


def test_median_rows_is_numpys_median():
    x = np.random.default_rng(0).random((5, 4300))
    np.testing.assert_array_equal(synth.median_rows(x), np.median(x, axis=1))
    np.testing.assert_array_equal(synth.median_rows(x[:, :-1]), np.median(x[:, :-1], axis=1))


def test_split_is_seeded_shared_and_has_the_fractions():
    a = synth.assign_split(1000, SPECTRA["split"], seed=1, family="parametric")
    assert (a == "test").sum() == 100 and (a == "validation").sum() == 100 and (a == "train").sum() == 800
    np.testing.assert_array_equal(a, synth.assign_split(1000, SPECTRA["split"], seed=1, family="parametric"))
    assert not np.array_equal(a, synth.assign_split(1000, SPECTRA["split"], seed=2, family="parametric"))


def test_cells_follow_the_ssp_source():
    ssp = {
        "source": "fastar",
        "alpha_models": [0.0, 0.4],
        "interpolate": {"metallicities": [-0.2, 0.0], "alphas": [0.0, 0.4]},
    }
    assert synth.spectra_cells({"ssp": ssp}) == ["m-0.20", "m+0.00"]
    ssp["source"] = "milespy"
    assert synth.spectra_cells({"ssp": ssp}) == ["m-0.20_a0.00", "m-0.20_a0.40", "m+0.00_a0.00", "m+0.00_a0.40"]
    ssp["alpha_models"] = "base"
    assert len(synth.spectra_cells({"ssp": ssp})) == 2
    assert synth.cell_name(-0.0) == "m+0.00"
    assert synth.parse_cell("m-2.20_a0.40") == (-2.2, 0.4) and synth.parse_cell("m+0.20") == (0.2, None)


def test_build_cell_labels_split_and_determinism(parametric, tmp_path):
    grid = fake_ssps(n_met=2, n_alpha=3)
    cube = synth.build_cell(parametric, grid, "m+0.00_a0.20", SPECTRA, seed=5)
    n = parametric.sizes["sfh"]
    assert cube.flux.shape == (n, 4300) and cube.flux.dtype == np.float32
    assert list(cube.parameter.values) == [f"t{p}" for p in range(10, 100, 10)] + ["metallicity", "alpha"]
    np.testing.assert_allclose(cube.labels.values[:, :9], parametric.percentiles.values)
    assert np.all(cube.labels.values[:, 9] == 0.0) and np.all(cube.labels.values[:, 10] == 0.2)
    assert set(cube.split.values) <= {"train", "validation", "test"}
    assert cube.attrs["time_convention"] == parametric.attrs["time_convention"]
    np.testing.assert_allclose(cube.t0, parametric.t0)
    # the split is the same in every cell of the family
    other = synth.build_cell(parametric, grid, "m-0.20_a0.40", SPECTRA, seed=5)
    np.testing.assert_array_equal(other.split.values, cube.split.values)
    # same seed, same cube, also after a round trip through netCDF
    a = synth.write_cube(cube, tmp_path / "a.nc", 16, 1)
    b = synth.write_cube(synth.build_cell(parametric, grid, "m+0.00_a0.20", SPECTRA, seed=5), tmp_path / "b.nc", 16, 1)
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        xr.testing.assert_identical(da, db)
        assert da.flux.encoding["chunksizes"] == (16, 4300)


def test_cells_off_the_grid_and_age_edges_are_refused(parametric):
    grid = fake_ssps(n_met=2)
    with pytest.raises(InputError, match="no metallicity"):
        synth.build_cell(parametric, grid, "m+0.30", SPECTRA, seed=5)
    with pytest.raises(InputError, match="no \\[alpha/Fe\\] axis"):
        synth.build_cell(parametric, grid, "m+0.00_a0.20", SPECTRA, seed=5)
    with pytest.raises(InputError, match="outside the SSP grid"):
        synth.build_cell(parametric, grid, "m+0.00", {**SPECTRA, "age_edges": "error"}, seed=5)


def test_distinct_sfhs_per_cell_are_used_once_and_keep_their_split(parametric):
    """sfh.nonparametric.per_cell: distinct: a cell's spectra are made of the SFHs drawn for it, no SFH is in two
    cells, and each SFH keeps the split drawn over the whole file."""
    grid = fake_ssps(n_met=2)
    n = parametric.sizes["sfh"]
    cells = np.where(np.arange(n) < n // 2, "m-0.20", "m+0.00")
    distinct = parametric.assign_coords(cell=("sfh", cells))
    whole_file_split = synth.assign_split(n, SPECTRA["split"], seed=5, family="parametric")
    seen = []
    for cell in ("m-0.20", "m+0.00"):
        cube = synth.build_cell(distinct, grid, cell, SPECTRA, seed=5)
        mine = np.flatnonzero(cells == cell)
        np.testing.assert_array_equal(cube.sample.values, mine)
        np.testing.assert_array_equal(cube.split.values, whole_file_split[mine])
        np.testing.assert_allclose(cube.labels.values[:, :9], parametric.percentiles.values[mine])
        seen.append(cube.sample.values)
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) + len(seen[1]) == n
    with pytest.raises(InputError, match="no SFHs for cell 'm-0.20'"):
        synth.build_cell(distinct.isel(sfh=slice(n // 2, None)), grid, "m-0.20", SPECTRA, seed=5)

"""Yield providers (CHEMPY HDF5 tables, VICE) and the optional real-CHEMPY backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from galaxy_sbi.chem import ELEMENTS, chempy_backend, load_chempy_yields, run_model, simulate
from galaxy_sbi.chem.packaged import tng_yields_dir


@pytest.fixture(scope="module")
def tng():
    return load_chempy_yields(tng_yields_dir())  # the copy shipped with galaxy-sbi


def test_tng_tables_as_specified(tng):
    np.testing.assert_array_equal(tng.snii.masses, [8, 9, 12, 13, 15, 18, 20, 25, 30, 40, 60, 100])
    np.testing.assert_allclose(tng.snii.metallicities, [0, 0.001, 0.004, 0.02], rtol=1e-6)
    np.testing.assert_allclose(tng.agb.metallicities, [0.0001, 0.004, 0.008, 0.02], rtol=1e-6)
    assert len(tng.agb.masses) == 17
    np.testing.assert_allclose(
        tng.snii.bin_edges[::-1], [100, 80, 50, 35, 27.5, 22.5, 19, 16.5, 14, 12.5, 10.5, 8.5, 8]
    )
    np.testing.assert_allclose(
        tng.agb.bin_edges[::-1],
        [8, 7.25, 6.5, 5.75, 5.25, 4.75, 4.25, 3.75, 3.25, 2.75, 2.375, 2.125, 1.95, 1.825, 1.625, 1.375, 1.125, 1],
        rtol=1e-7,
    )
    snia = dict(zip(ELEMENTS, tng.snia_yields))
    expect = dict(
        H=0, He=0, C=0.048301402, N=1.16132e-6, O=0.14300004, Ne=0.00451846, Mg=0.0085723009, Si=0.152601, Fe=0.74346298
    )
    for e, v in expect.items():
        assert snia[e] == pytest.approx(v, rel=1e-6, abs=1e-12), e
    assert tng.snia_hydrogen_removed == pytest.approx(1.374341607 - 0.3 * 2.156, rel=1e-7)
    for t in (tng.snii, tng.agb):
        total = t.net_yields.sum(-1) + t.untraced_net + t.remnant + t.unprocessed
        np.testing.assert_allclose(total, 1.0, atol=1e-12)
        assert ((t.remnant > 0) & (t.remnant < 1)).all()


def test_missing_tables_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_chempy_yields(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="SNII.hdf5"):
        load_chempy_yields(tmp_path)


def test_zeroed_yields_keep_remnants(tng):
    zero = tng.zeroed()
    assert not zero.snii.net_yields.any() and not zero.snia_yields.any()
    np.testing.assert_allclose(zero.snii.unprocessed, 1 - tng.snii.remnant)


def test_single_metallicity_table_means_no_metallicity_dependence(tng):
    from galaxy_sbi.chem import YieldSet, YieldTable

    t = tng.snii
    one = YieldTable(t.masses, t.metallicities[3:], t.net_yields[3:], t.remnant[3:], t.untraced_net[3:], t.mass_range)
    two = YieldTable(
        t.masses,
        np.array([0.001, 0.02]),
        np.concatenate([t.net_yields[3:]] * 2),
        np.concatenate([t.remnant[3:]] * 2),
        np.concatenate([t.untraced_net[3:]] * 2),
        t.mass_range,
    )
    theta = np.array([[-2.3, -2.89, -0.3, 0.55, 0.5, 13.0], [-2.0, -2.6, -0.5, 0.6, 0.3, 6.0]])
    out1, v1 = simulate(theta, YieldSet(one, tng.agb, tng.snia_yields, tng.snia_hydrogen_removed))
    out2, v2 = simulate(theta, YieldSet(two, tng.agb, tng.snia_yields, tng.snia_hydrogen_removed))
    assert v1.all() and v2.all()
    np.testing.assert_allclose(out1, out2, atol=1e-12)


# ---------------------------------------------------------------- VICE provider


@pytest.fixture(scope="module", params=["tng_like", "alternative"])
def vice_set(request):
    pytest.importorskip("vice", reason="the VICE provider needs the PyPI package 'vice'")
    from galaxy_sbi.chem import load_vice_yields

    return load_vice_yields(request.param)


def test_vice_sets_are_consistent(vice_set):
    for t in (vice_set.snii, vice_set.agb):
        k, m = len(t.metallicities), len(t.masses)
        assert t.net_yields.shape == (k, m, 9) and k >= 2 and m >= 5
        assert ((t.remnant > 0) & (t.remnant <= 1)).all()
        assert (t.unprocessed > 0).all() and (t.unprocessed <= 1).all()
        # CHEMPY's net-yield bookkeeping: net (all species) + remnant + unprocessed = 1
        total = t.net_yields.sum(-1) + t.untraced_net + t.remnant + t.unprocessed
        np.testing.assert_allclose(total, 1.0, atol=1e-10)
    assert vice_set.snia_yields[ELEMENTS.index("Fe")] > 0.5
    assert 0.6 < vice_set.snia_hydrogen_removed < 0.8


def test_vice_ccsn_reproduces_published_gross_yields(vice_set):
    """A star born with the progenitor composition returns VICE's tabulated (gross) yields."""
    import vice as vice_mod

    from galaxy_sbi.chem.yields import VICE_PRESETS, _birth_composition

    study = VICE_PRESETS["tng_like" if vice_set.name.endswith("tng_like") else "alternative"]["ccsne"]
    t = vice_set.snii
    k = len(t.metallicities) - 1
    z = t.metallicities[k]
    mh = np.log10(z / sum(vice_mod.solar_z[e] for e in vice_mod.elements.recognized if e != "he"))
    comp = _birth_composition(vice_mod, z)
    xb = np.array([comp[e.lower()] for e in ELEMENTS])
    for e in ("O", "Fe", "Mg"):
        table = vice_mod.yields.ccsne.table(e.lower(), study=study, MoverH=round(float(mh), 2))
        i = ELEMENTS.index(e)
        for b, m in enumerate(t.masses[:4]):
            ejected = (t.net_yields[k, b, i] + t.unprocessed[k, b] * xb[i]) * m
            assert ejected == pytest.approx(table[float(m)], rel=1e-9), (e, m)


def test_vice_sets_run_and_behave(vice_set):
    rng = np.random.default_rng(5)
    n = 64
    theta = np.column_stack(
        [
            rng.uniform(-2.6, -2.0, n),
            rng.uniform(-3.2, -2.6, n),
            rng.uniform(-0.6, 0.0, n),
            rng.uniform(0.45, 0.65, n),
            rng.uniform(0.3, 0.7, n),
            rng.uniform(2, 13.8, n),
        ]
    )
    out, valid = simulate(theta, vice_set)
    assert valid.mean() > 0.8 and np.isfinite(out[valid]).all()
    r = run_model(theta, vice_set)
    total = r.ism.sum(-1) + r.corona_gas + r.stellar_mass
    expected = 1.0 / r.frac[:, None] + torch.cumsum(r.sfr, 1)
    assert float(((total - expected).abs() / expected).max()) < 1e-12
    hi = theta.copy()
    hi[:, 1] += 0.5
    out_hi, valid_hi = simulate(hi, vice_set)
    ok = valid & valid_hi
    o = ELEMENTS.index("O")
    assert (out_hi[ok, o] < out[ok, o]).all()


def test_vice_presets_differ():
    pytest.importorskip("vice")
    from galaxy_sbi.chem import load_vice_yields

    a, b = load_vice_yields("tng_like"), load_vice_yields("alternative")
    theta = np.array([[-2.3, -2.89, -0.3, 0.55, 0.5, 10.0]])
    (oa, va), (ob, vb) = simulate(theta, a), simulate(theta, b)
    assert va[0] and vb[0] and np.abs(oa - ob).max() > 0.05
    with pytest.raises(ValueError, match="preset"):
        load_vice_yields("nonsense")


def test_vice_ccsn_yields_interpolate_between_the_tables_a_study_has():
    """NKT13 has no table at [M/H] = 0 (VICE raises LookupError): the yield is linear in [M/H] between -0.24
    and +0.15, and a study's real error is not swallowed."""
    vice = pytest.importorskip("vice")
    from galaxy_sbi.chem.yields import vice_ccsn_fractional

    def imf(m):
        return m**-2.3

    at = {mh: vice_ccsn_fractional(vice, "o", "NKT13", mh, imf) for mh in (-0.24, 0.0, 0.15)}
    assert at[-0.24] > 0 and at[0.15] > 0
    w = 0.24 / 0.39
    assert at[0.0] == pytest.approx((1 - w) * at[-0.24] + w * at[0.15], rel=1e-12)
    assert vice_ccsn_fractional(vice, "o", "NKT13", 3.0, imf) == pytest.approx(
        vice_ccsn_fractional(vice, "o", "NKT13", 0.55, imf)
    )  # clamped to the last table
    assert vice_ccsn_fractional(vice, "eu", "NKT13", 0.0, imf) == 0.0  # not reported: zero by design
    with pytest.raises(ValueError, match="unknown VICE CCSN study"):
        vice_ccsn_fractional(vice, "o", "XX99", 0.0, imf)


def test_vice_galaxy_has_core_collapse_stars_with_their_own_parameters(tmp_path):
    """The repaired VICE data set: alpha elements from core-collapse SNe ([O/Fe] > 0 in old stars), every star its
    own local parameters (one run each) and birth times from the prior's range, not all equal."""
    pytest.importorskip("vice")
    from galaxy_sbi.chem.datasets import OBS_LABELS, vice_galaxy
    from galaxy_sbi.chem.priors import Priors

    priors = Priors(np.array([-2.3, -2.89, -0.3, 0.55, 0.5]), np.array([0.3, 0.3, 0.3, 0.1, 0.1]), (1.0, 13.8), 5)
    g = vice_galaxy([-2.3, -2.89], priors, 6, 6, 0.05, np.random.default_rng(3), tmp_path)
    theta, true = g["theta"], g["true"]
    assert len(true) >= 5 and np.isfinite(true).all()
    assert np.median(true[:, OBS_LABELS.index("[O/Fe]")]) > 0.2
    assert np.ptp(true[:, OBS_LABELS.index("[O/Fe]")]) > 0.01  # not one ratio for all stars
    assert (theta[:, :2] == [-2.3, -2.89]).all()
    assert len(np.unique(theta[:, 2])) == len(theta)  # local parameters per star
    assert ((theta[:, 5] >= 1.0) & (theta[:, 5] <= 13.8)).all() and len(np.unique(theta[:, 5])) == len(theta)


def test_vice_missing_gives_install_hint(monkeypatch):
    from galaxy_sbi.chem import load_vice_yields

    monkeypatch.setitem(sys.modules, "vice", None)
    with pytest.raises(ImportError, match="cython<3.1"):
        load_vice_yields()


# ---------------------------------------------------------------- real CHEMPY backend


def test_chempy_backend_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "Chempy", None)
    monkeypatch.setitem(sys.modules, "Chempy.cem_function", None)
    assert not chempy_backend.chempy_available()
    from galaxy_sbi.chem import simulate_chempy

    with pytest.raises(ImportError, match="ChempyMulti"):
        simulate_chempy(np.zeros((1, 6)))


def test_chempy_backend_agrees_when_installed(tng):
    if not chempy_backend.chempy_available():
        pytest.skip("real CHEMPY (ChempyMulti) is not installed")
    theta = np.array([[-2.3, -2.89, -0.3, 0.55, 0.5, 13.0], [-2.3, -2.89, -0.3, 0.2, 0.5, 12.0]])
    ref, ref_valid = chempy_backend.simulate_chempy(theta)
    out, valid = simulate(theta, tng)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_allclose(out[valid], ref[valid], atol=1e-5)


def test_the_study_data_ship_with_the_package():
    """CHEMPY's TNG tables and the TNG galaxy are package data (MIT, licence and citations beside them)."""
    from galaxy_sbi.chem.datasets import OBS_LABELS, load_tng_mock, load_yields
    from galaxy_sbi.chem.packaged import data_dir

    assert "MIT" in (data_dir() / "LICENSE").read_text()
    assert "Pillepich" in (data_dir() / "README.md").read_text()
    tng = load_yields({"source": "tng"})
    assert tng.name == "TNG" and tng.snii.masses.size > 1
    stars = load_tng_mock("packaged")
    assert stars["obs"].shape == (1000, len(OBS_LABELS)) and np.isfinite(stars["obs"]).all()


def _copy_tng(tmp_path):
    import shutil

    target = tmp_path / "tables"
    shutil.copytree(tng_yields_dir(), target)
    return target


def test_yield_loader_bad_input_names_the_file(tmp_path):
    """A table without a traced element, with a wrongly shaped yield block, or missing: one message naming the file."""
    import h5py

    folder = _copy_tng(tmp_path)
    with h5py.File(folder / "SNII.hdf5", "r+") as h5:  # rename Oxygen: an element the model traces is missing
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["Species_names"][()]]
        del h5["Species_names"]
        h5["Species_names"] = np.array([("Unobtainium" if n == "Oxygen" else n).encode() for n in names])
    with pytest.raises(ValueError, match=r"SNII\.hdf5 lacks the traced elements \['O'\]"):
        load_chempy_yields(folder)

    folder = _copy_tng(tmp_path / "b")
    with h5py.File(folder / "AGB.hdf5", "r+") as h5:  # one yield block with a mass column too few
        group = next(iter(h5["Yields"]))
        y = h5[f"Yields/{group}/Yield"][()]
        del h5[f"Yields/{group}/Yield"]
        h5[f"Yields/{group}/Yield"] = y[:, :-1]
    with pytest.raises(ValueError, match=r"AGB\.hdf5: Yields/.* has Yield"):
        load_chempy_yields(folder)

    folder = _copy_tng(tmp_path / "c")
    (folder / "SNIa.hdf5").unlink()
    with pytest.raises(FileNotFoundError, match=r"SNIa\.hdf5 not found"):
        load_chempy_yields(folder)


def test_tng_mock_loader_bad_input_names_the_file(tmp_path):
    from galaxy_sbi.chem.datasets import load_tng_mock
    from galaxy_sbi.errors import InputError

    with pytest.raises(InputError, match="file not found"):
        load_tng_mock(tmp_path / "nope.npz")
    bad = tmp_path / "no_abundances.npz"
    np.savez(bad, elements=np.array(["C", "Fe"]))
    with pytest.raises(InputError, match=r"no_abundances\.npz: missing arrays \['abundances'\]"):
        load_tng_mock(bad)
    few = tmp_path / "few_elements.npz"
    np.savez(few, elements=np.array(["C", "Fe"]), abundances=np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"few_elements\.npz: elements \[.*'O'.*\] missing"):
        load_tng_mock(few)

"""The study's alternative yield set (Nomoto+13 / Karakas & Lugaro 16 / Thielemann+03) as CHEMPY processes it.

``tests/data/chempy_reference_alternative.npz`` holds real CHEMPY's processed tables and its abundances for 300
parameter sets (tools/chempy_reference/run_chempy.py); the port must equal both, to the TNG set's tolerance.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from galaxy_sbi.chem import ELEMENTS, OUTPUT_LABELS, simulate
from galaxy_sbi.chem.chempy_tables import karakas16_net, load_study_alternative_yields, nomoto2013_net
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.packaged import alternative_yields_dir

REFERENCE = Path(__file__).parent / "data" / "chempy_reference_alternative.npz"
TOOLS = Path(__file__).parents[1] / "tools" / "chempy_reference" / "make_alternative_tables.py"


@pytest.fixture(scope="module")
def alternative():
    return load_study_alternative_yields()


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


def _chempy_table(reference, channel, z):
    prefix = f"tables_{channel}|{z}|"
    cols = {k[len(prefix) :]: reference[k] for k in reference.files if k.startswith(prefix)}
    order = np.argsort(cols["Mass"])
    return {k: v[order] for k, v in cols.items()}


def test_the_config_source_loads_the_set(alternative):
    ys = load_yields({"source": "study_alternative"})
    assert ys.name == "alternative" and np.array_equal(ys.agb.net_yields, alternative.agb.net_yields)
    assert alternative.snii.metallicities.tolist() == [0.001, 0.004, 0.008, 0.02, 0.05]
    assert alternative.agb.metallicities.tolist() == [0.001, 0.007, 0.014, 0.03]


def test_net_yields_equal_chempys_processed_tables(alternative, reference):
    """Every traced element's net yield, the remnant and the unprocessed wind of each mass, channel and Z."""
    snii, agb = alternative.snii, alternative.agb
    for k, z in enumerate(snii.metallicities):
        t = _chempy_table(reference, "snii", z)
        np.testing.assert_array_equal(t["Mass"], snii.masses)
        for i, e in enumerate(ELEMENTS):
            np.testing.assert_allclose(snii.net_yields[k, :, i], t[e], rtol=0, atol=1e-14)
        np.testing.assert_allclose(snii.unprocessed[k], t["unprocessed_mass_in_winds"], rtol=0, atol=1e-14)
    # Karakas16's masses differ between metallicities: the table is split on the union of the bins, each
    # sub-bin carrying the yield of CHEMPY's bin around it
    mids = 0.5 * (agb.bin_edges[1:] + agb.bin_edges[:-1])
    for k, z in enumerate(agb.metallicities):
        t = _chempy_table(reference, "agb", z)
        edges = np.concatenate([[1.0], 0.5 * (t["Mass"][1:] + t["Mass"][:-1]), [8.0]])
        b = np.searchsorted(edges, mids, side="right") - 1
        for i, e in enumerate(ELEMENTS):
            np.testing.assert_allclose(agb.net_yields[k, :, i], t[e][b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(agb.unprocessed[k], t["unprocessed_mass_in_winds"][b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(agb.remnant[k], t["mass_in_remnants"][b], rtol=0, atol=1e-14)
        assert set(edges) <= set(agb.bin_edges)
    snia = _chempy_table(reference, "snia", 0.02)
    per_event = [snia[e][0] * -snia["mass_in_remnants"][0] for e in ELEMENTS]  # CHEMPY's feedback mass
    np.testing.assert_allclose(alternative.snia_yields, per_event, rtol=1e-12)


def test_agreement_with_real_chempy(alternative, reference):
    params, target = reference["params"], reference["abundances"]
    assert list(reference["elements"]) == list(ELEMENTS)
    out, valid = simulate(params, alternative)
    ref_valid = np.isfinite(target).all(1)
    both = valid & ref_valid
    max_diff = np.abs(out[both] - target[both]).max(0)
    report = ", ".join(f"{lab} {d:.1e}" for lab, d in zip(OUTPUT_LABELS, max_diff))
    print(f"\naccept/reject agreement {(valid == ref_valid).mean():.4f}; max |diff| (dex): {report}")
    assert both.sum() >= 0.9 * len(params)
    assert (max_diff <= 1e-5).all(), report  # the TNG set's tolerance
    for prior in np.unique(reference["prior"]):
        sel = reference["prior"] == prior
        assert (valid[sel] == ref_valid[sel]).mean() >= 0.995, prior


def test_the_alternative_set_is_not_the_training_set(alternative, reference):
    """The misspecification the table measures is real: the two sets give different abundances."""
    from galaxy_sbi.chem import load_chempy_yields
    from galaxy_sbi.chem.packaged import tng_yields_dir

    params = reference["params"][:100]
    alt, va = simulate(params, alternative)
    tng, vt = simulate(params, load_chempy_yields(tng_yields_dir()))
    ok = va & vt
    assert np.median(np.abs(alt[ok] - tng[ok]), axis=0).max() > 0.05


def _tools():
    spec = importlib.util.spec_from_file_location("make_alternative_tables", TOOLS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_surface_rebuild_rule_reproduces_an_existing_file():
    """The rule that rebuilt surf_z007/z014 from surf_z03, applied at Z = 0.001, gives the real surf_z001."""
    tools, d = _tools(), alternative_yields_dir() / "Karakas2016"
    z03 = (d / "surf_z03.dat").read_text().splitlines(keepends=True)
    fe = tools.wind_iron_fraction((d / "yield_z001.dat").read_text().splitlines())
    rebuilt = tools.rebuilt_surface(z03, 0.001, 0.25, fe)
    actual = (d / "surf_z001.dat").read_text().splitlines()
    for el in ("p", "he", "c", "n", "o", "ne", "mg", "si", "fe"):
        ratio = tools.block_fraction(rebuilt, el) / tools.block_fraction(actual, el)
        assert ratio == pytest.approx(1.0, abs=0.004), el
    for tag, z, y in (("007", 0.007, 0.26), ("014", 0.014, 0.28)):
        block = (d / f"surf_z{tag}.dat").read_text()
        assert f"Z =  {z:.4f}, Y =  {y:.3f}" in block
        wind = tools.wind_iron_fraction((d / f"yield_z{tag}.dat").read_text().splitlines())
        assert tools.block_fraction(block.splitlines(), "fe") == pytest.approx(wind, rel=1e-5)


@pytest.fixture
def tables(tmp_path):
    target = tmp_path / "alternative"
    shutil.copytree(alternative_yields_dir(), target)
    return target


def test_a_missing_table_is_named(tables):
    (tables / "Nomoto2013" / "nomoto_net_met_ind_3.npy").unlink()
    with pytest.raises(FileNotFoundError, match="nomoto_net_met_ind_3.npy"):
        nomoto2013_net(tables)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_study_alternative_yields(tables / "nowhere")


def test_a_truncated_yield_file_is_named(tables):
    path = tables / "Karakas2016" / "yield_z014.dat"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(ValueError, match=r"yield_z014.dat: .* rows, but CHEMPY reads 21 models"):
        karakas16_net(tables)


def test_a_surface_file_without_an_element_or_its_block_is_named(tables):
    path = tables / "Karakas2016" / "surf_z007.dat"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.lstrip().startswith("mg ")))
    with pytest.raises(ValueError, match=r"surf_z007.dat: no initial abundance of \['Mg'\]"):
        karakas16_net(tables)
    path.write_text("".join(lines[:20]))
    with pytest.raises(ValueError, match="surf_z007.dat: not a Karakas"):
        karakas16_net(tables)

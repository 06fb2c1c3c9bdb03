"""Physical sanity of the chemical-evolution simulator (any yield set that CHEMPY could use)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_sbi.chem import ELEMENTS, load_chempy_yields, run_model, simulate
from galaxy_sbi.chem.packaged import tng_yields_dir

MU = np.array([-2.3, -2.89, -0.3, 0.55, 0.5])
SIGMA = np.array([0.3, 0.3, 0.3, 0.1, 0.1])


@pytest.fixture(scope="module")
def tng():
    return load_chempy_yields(tng_yields_dir())  # the copy shipped with galaxy-sbi


def _prior(n, seed=0, width=2.0):
    rng = np.random.default_rng(seed)
    theta = np.empty((n, 6))
    theta[:, :5] = MU + SIGMA * rng.uniform(-width, width, (n, 5))
    theta[:, 4] = theta[:, 4].clip(0, 1)
    theta[:, 5] = rng.uniform(1.0, 13.8, n)
    return theta


def test_mass_conservation(tng):
    """ISM + corona + stars (formed minus returned) = initial reservoir + cosmic inflow, every step."""
    theta = _prior(300, seed=1, width=3.0)
    r = run_model(theta, tng)
    ism = r.ism.sum(-1)
    total = ism + r.corona_gas + r.stellar_mass
    # initial reservoir 1/frac + sfr_0 (step 0 inflow), then the cosmic inflow sfr_k at every step
    expected = 1.0 / r.frac[:, None] + torch.cumsum(r.sfr, 1)
    steps = torch.arange(28)[None, :] < r.n_steps[:, None]
    err = ((total - expected).abs() / expected)[steps]
    assert float(err.max()) < 1e-12
    # the corona's element masses add up to its separately tracked gas mass
    rel = ((r.corona.sum(-1) - r.corona_gas).abs() / expected)[steps]  # the corona may run dry
    assert float(rel.max()) < 1e-12
    # stars never return more than they were formed with, and the remnants keep some mass
    formed = torch.cumsum(r.sfr, 1)
    ok = r.valid[:, None] & steps
    assert bool((r.stellar_mass[ok] <= formed[ok] * (1 + 1e-12)).all())
    assert bool((r.stellar_mass[:, -1][r.valid] > 0).all())
    # total returned by the whole population stays within a plausible return fraction
    returned = r.feedback.sum((1, 2))[r.valid]
    assert bool(((returned > 0) & (returned < 0.7)).all())


def test_zero_yields_keep_primordial_gas(tng):
    zero = tng.zeroed()
    theta = _prior(64, seed=2)
    r = run_model(theta, zero)
    steps = torch.arange(28)[None, :] < r.n_steps[:, None]
    gas = r.ism.sum(-1)
    h = (r.ism[..., ELEMENTS.index("H")] / gas)[steps]
    he = (r.ism[..., ELEMENTS.index("He")] / gas)[steps]
    assert torch.allclose(h, torch.full_like(h, 0.76), rtol=0, atol=1e-13)
    assert torch.allclose(he, torch.full_like(he, 0.24), rtol=0, atol=1e-13)
    metals = [ELEMENTS.index(e) for e in ELEMENTS if e not in ("H", "He")]
    assert float(r.ism[..., metals].abs().max()) == 0.0
    assert float(r.metallicity.abs().max()) == 0.0
    # the stars still return their (primordial) envelopes
    assert float(r.feedback.sum((1, 2)).min()) > 0


def _paired(tng, column, low, high, n=200, seed=3):
    base = _prior(n, seed=seed, width=1.0)
    lo, hi = base.copy(), base.copy()
    lo[:, column], hi[:, column] = low, high
    out_lo, v_lo = simulate(lo, tng)
    out_hi, v_hi = simulate(hi, tng)
    ok = v_lo & v_hi
    assert ok.sum() > n // 2
    return out_lo[ok], out_hi[ok]


def test_more_snia_lowers_alpha_over_iron(tng):
    few, many = _paired(tng, 1, -3.2, -2.6)
    for e in ("O", "Mg", "Si", "Ne"):
        i = ELEMENTS.index(e)
        assert (many[:, i] < few[:, i]).all(), e
    assert (many[:, ELEMENTS.index("Fe")] > few[:, ELEMENTS.index("Fe")]).all()


def test_flatter_imf_raises_oxygen_over_iron(tng):
    steep, flat = _paired(tng, 0, -2.7, -1.9)
    i = ELEMENTS.index("O")
    assert (flat[:, i] > steep[:, i]).all()


def test_output_relations(tng):
    out, valid = simulate(_prior(100, seed=4), tng)
    out = out[valid]
    np.testing.assert_array_equal(out[:, ELEMENTS.index("H")], -out[:, ELEMENTS.index("Fe")])
    assert np.isfinite(out).all()

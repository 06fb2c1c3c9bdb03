"""Realism operators: noise level, velocity broadening (flux, width in quadrature), masks."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_sbi.spectra import realism
from galaxy_sbi.spectra.ssp import MILES_WAVELENGTH as WAVE


def gaussian_line(center, sigma, depth=0.5):
    return depth * np.exp(-0.5 * ((WAVE - center) / sigma) ** 2)


def moments(wave, profile):
    total = profile.sum()
    mu = (wave * profile).sum() / total
    return total, mu, np.sqrt(((wave - mu) ** 2 * profile).sum() / total)


@pytest.mark.parametrize("mode", ["median", "flux"])
def test_noise_std_matches_one_over_snr(mode):
    rng = np.random.default_rng(0)
    flux = np.tile(1.0 + 0.3 * np.sin(WAVE / 200.0), (200, 1)).astype(np.float32)
    snr = np.array([10.0, 50.0] * 100)
    noisy, sigma = realism.add_noise(flux, snr, rng, mode=mode, return_sigma=True)
    assert noisy.dtype == np.float32 and noisy.shape == flux.shape
    z = (noisy - flux) / sigma
    assert abs(z.std() - 1) < 0.005 and abs(z.mean()) < 0.005
    rel = ((noisy - flux) / (np.median(flux, axis=1, keepdims=True) if mode == "median" else flux)).std(axis=1)
    np.testing.assert_allclose(rel[::2].mean(), 1 / 10, rtol=0.01)
    np.testing.assert_allclose(rel[1::2].mean(), 1 / 50, rtol=0.01)
    assert np.array_equal(noisy, realism.add_noise(flux, snr, np.random.default_rng(0), mode=mode))
    with pytest.raises(ValueError):
        realism.add_noise(flux, 0.0, rng)


@pytest.mark.parametrize("center", [4000.0, 5200.0, 7000.0])
@pytest.mark.parametrize("sigma_kms", [60.0, 150.0, 300.0])
def test_broadening_conserves_flux_and_adds_width_in_quadrature(center, sigma_kms):
    line = gaussian_line(center, 2.0)
    out = realism.broaden(line, WAVE, sigma_kms)
    total0, mu0, s0 = moments(WAVE, line)
    total, mu, s = moments(WAVE, out)
    assert total == pytest.approx(total0, rel=1e-9)
    assert mu == pytest.approx(mu0, abs=0.01)
    expected = center * sigma_kms / realism.C_KMS
    # the two flux-conserving rebinnings add about (0.9 A)^2 / 6 in quadrature: allow for that
    assert s**2 - s0**2 == pytest.approx(expected**2, abs=0.2)


def test_broadening_batch_per_spectrum_sigma_and_flat_continuum():
    cont = 1.0 - gaussian_line(5000.0, 1.5)
    batch = np.tile(cont, (3, 1)).astype(np.float32)
    out = realism.broaden(batch, WAVE, [0.0, 100.0, 250.0])
    assert out.shape == batch.shape and out.dtype == np.float32
    # deeper line for less broadening; the continuum (and its ends) stays flat
    depth = 1 - out[:, np.argmin(np.abs(WAVE - 5000.0))]
    assert depth[0] > depth[1] > depth[2]
    np.testing.assert_allclose(out[:, :200], 1.0, atol=1e-5)
    np.testing.assert_allclose(out[:, -200:], 1.0, atol=1e-5)
    single = realism.broaden(cont, WAVE, 100.0)
    np.testing.assert_allclose(single, out[1], atol=1e-6)


def test_rebinning_conserves_flux_and_agrees_with_ppxf_log_rebin():
    ppxf_util = pytest.importorskip("ppxf.ppxf_util")
    spec = 1.0 + 0.5 * np.sin(WAVE / 37.0) + gaussian_line(6000.0, 3.0)
    edges = realism.pixel_edges(WAVE)
    log_edges, velscale = realism.log_grid(WAVE, oversample=1)
    counts = realism.rebin(edges, spec * np.diff(edges), log_edges)
    assert counts.sum() == pytest.approx((spec * np.diff(edges)).sum(), rel=1e-12)
    # ppxf's log_rebin (flux=False gives a density per log pixel) on the same velocity scale
    lam_range = [WAVE[0], WAVE[-1]]
    ref, ln_lam, _ = ppxf_util.log_rebin(lam_range, spec, velscale=velscale)
    density = counts / np.diff(log_edges)
    centres = np.exp(ln_lam)
    ours = np.interp(centres, np.sqrt(log_edges[1:] * log_edges[:-1]), density)
    inner = slice(5, -5)
    np.testing.assert_allclose(ours[inner], ref[inner], rtol=0.02)


def test_masks():
    flux = np.ones((2, WAVE.size), np.float32)
    mask = realism.wavelength_mask(WAVE, [(4855.0, 4870.0), (6550.0, 6575.0)])
    assert mask.sum() == 17 + 28
    masked, weights = realism.apply_mask(flux, mask)
    assert masked.dtype == np.float32 and np.all(masked[:, mask] == 0) and np.all(masked[:, ~mask] == 1)
    assert np.array_equal(weights, np.broadcast_to(~mask, flux.shape).astype(np.float32))
    per_spectrum = np.zeros_like(flux, bool)
    per_spectrum[1, :300] = True  # e.g. missing blue coverage of one observed spectrum
    masked, weights = realism.apply_mask(flux, per_spectrum, fill_value=np.nan)
    assert np.isnan(masked[1, :300]).all() and not np.isnan(masked[0]).any() and weights[1, :300].sum() == 0
    assert flux.min() == 1  # inputs are never modified

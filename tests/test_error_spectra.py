"""Noise with a real spectrum's wavelength dependence: error-spectrum shapes and the degradations that use them."""

import numpy as np
import pytest

from galaxy_sbi.spectra.error_spectra import (
    error_shape,
    error_spectra_dataset,
    evaluation_shape,
    load_shapes,
    mean_shape,
    random_shape,
    shaped_error,
)
from galaxy_sbi.spectra.evaluation import fixed_degradation

WAVE = np.arange(3540.5, 7409.6 + 0.01, 0.9)
CFG = {"instrumental_fwhm_angstrom": 2.51, "blue_mask_below_angstrom": 3800.0}


def test_shape_is_smooth_median_one_and_filled():
    # a blue-rising error with a pixel ripple, a spike and two masked stretches (one at the blue end)
    smooth = np.where(WAVE < 4500, 2.0 - (WAVE - 3540.5) / 960.0, 1.0)
    ripple = 1 + 0.2 * np.where(np.arange(len(WAVE)) % 2, 1, -1)
    error = smooth * ripple
    error[2000] = 50.0
    good = (WAVE > 3800) & ~((WAVE > 6000) & (WAVE < 6100))
    s = error_shape(WAVE, error, good, smooth_angstrom=25.0)
    assert np.median(s[good]) == pytest.approx(1.0)
    assert np.isfinite(s).all() and (s > 0).all()
    # ripple and spike gone: the shape follows the smooth trend to a few per cent
    ratio = s[good] / (smooth[good] / np.median(smooth[good]))
    assert np.percentile(np.abs(ratio - 1), 95) < 0.05
    # the masked blue end holds the first good value; the masked gap is interpolated
    assert s[WAVE < 3800] == pytest.approx(np.full((WAVE < 3800).sum(), s[good][0]))
    gap = (WAVE > 6000) & (WAVE < 6100)
    assert np.allclose(s[gap], 1.0 / np.median(smooth[good]), rtol=0.05)


def test_powers_and_means():
    s = np.linspace(0.5, 2.0, 101)
    np.testing.assert_allclose(shaped_error(s, 0.0), 1.0)
    np.testing.assert_allclose(shaped_error(s, 1.0), s / np.median(s))
    assert np.median(shaped_error(s, 1.5)) == pytest.approx(1.0)
    two = np.vstack([s, s[::-1]])
    m = mean_shape(two)
    assert np.median(m) == pytest.approx(1.0) and np.ptp(m) < np.ptp(s)  # opposite slopes cancel
    rng = np.random.default_rng(0)
    draws = [random_shape(two, [0.0, 1.5], rng) for _ in range(200)]
    assert {k for _, k, _ in draws} == {0, 1} and all(0.0 <= u <= 1.5 for _, _, u in draws)


def test_shaped_degradation_puts_noise_where_the_shape_says():
    shape = np.where(WAVE < 4500, 2.0, 1.0)
    shape /= np.median(shape)
    setting = {"snr": 50.0, "sigma_kms": 0.0, "blue_mask": False}
    flat = np.ones((400, len(WAVE)))
    rng = np.random.default_rng(1)
    white = fixed_degradation(setting, WAVE, CFG).apply(flat, rng)
    shaped = fixed_degradation(setting, WAVE, {**CFG, "error_shape": shape}).apply(flat, rng)
    blue, red = WAVE < 4400, WAVE > 4600
    assert white[:, blue].std() == pytest.approx(white[:, red].std(), rel=0.05)
    assert shaped[:, blue].std() / shaped[:, red].std() == pytest.approx(2.0, rel=0.05)
    assert shaped[:, red].std() == pytest.approx(1 / 50.0, rel=0.05)  # the median pixel keeps S/N 50


def test_sdss_error_spectra_are_noisier_in_the_blue(tmp_path):
    pytest.importorskip("ppxf")
    from galaxy_sbi.spectra.observation import resolve_path

    try:
        resolve_path("ppxf:spectra/NGC3522_SDSS_DR18.fits")
    except Exception as exc:  # an installed ppxf without its example spectra
        pytest.skip(f"ppxf's SDSS example spectra are not installed: {exc}")
    preparation = {
        "min_overlap_angstrom": 1500,
        "min_good_fraction": 0.5,
        "sky_lines_angstrom": [5577.34, 5889.95, 5895.92, 6300.30, 6363.78],
        "sky_half_width_angstrom": 5.0,
        "emission_lines_angstrom": [],
        "emission_half_width_kms": 400,
    }
    sources = {g: {"file": f"ppxf:spectra/{g}_SDSS_DR18.fits"} for g in ("NGC3522", "NGC3073")}
    ds = error_spectra_dataset(sources, WAVE, preparation, 100.0)
    assert list(ds.source.values) == ["NGC3522", "NGC3073"] and ds["shape"].shape == (2, len(WAVE))
    for g in sources:
        s = ds["shape"].sel(source=g).values
        good = ds["good"].sel(source=g).values.astype(bool)
        assert np.median(s[good]) == pytest.approx(1.0)
        # not white: the error's 5-95 % range spans > 25 %, and it steps at the dichroic (~5900 A observed)
        assert np.percentile(s[good], 95) / np.percentile(s[good], 5) > 1.25
        assert np.median(s[(WAVE > 5700) & (WAVE < 5800)]) / np.median(s[(WAVE > 5950) & (WAVE < 6050)]) > 1.1
        # and the S/N per pixel below 4000 A well under the median (little flux there)
        assert ds.attrs[f"{g}_snr_median_below_4000A"] < 0.8 * ds.attrs[f"{g}_snr_median"]
    ds.to_netcdf(tmp_path / "e.nc")
    m = evaluation_shape(load_shapes(tmp_path / "e.nc"), "mean")
    assert m.shape == WAVE.shape and np.median(m) == pytest.approx(1.0)
    assert evaluation_shape(load_shapes(tmp_path / "e.nc"), "white") is None

"""The SSP-library systematic's arithmetic: FASTAR-against-MILES residuals and the observed galaxies' summary of the
cross-library test (the whole chain runs in `snakemake ssp_systematic`, on real MILES files)."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_sbi.errors import InputError
from galaxy_sbi.spectra import ssp
from galaxy_sbi.spectra.observed import library_systematic
from galaxy_sbi.spectra.ssp_systematic import compare_libraries, comparison_summary, fastar_imf_for


def cube(scale=1.0, tilt=0.0):
    wave = ssp.MILES_WAVELENGTH
    x = (wave - wave.mean()) / np.ptp(wave)
    lines = 1 - 0.3 * np.exp(-0.5 * ((wave - 4861.3) / 3) ** 2) - 0.2 * np.exp(-0.5 * ((wave - 5175) / 5) ** 2)
    flux = np.stack([[scale * (1 + a) * (1 + tilt * x) * lines for a in (1.0, 10.0)] for _ in (-0.4, 0.0)])
    return ssp.ssp_dataset(flux, [1.0, 10.0], [-0.4, 0.0], wave)


def test_identical_libraries_have_no_residual_and_a_scaled_one_only_a_luminosity_ratio():
    same = compare_libraries(cube(), cube())
    assert np.abs(same.residual_percent).max() < 1e-3 and np.allclose(same.luminosity_ratio, 1)
    assert np.abs(same.ew_fastar - same.ew_miles).max() < 1e-6
    scaled = compare_libraries(cube(scale=0.8), cube())
    assert np.abs(scaled.residual_percent).max() < 1e-3 and np.allclose(scaled.luminosity_ratio, 0.8, rtol=1e-5)
    assert float(scaled.sel(index="Hβ").ew_miles.mean()) > 1  # the fake line is seen by its Lick index


def test_a_continuum_tilt_shows_in_the_residual_not_in_narrow_indices():
    ds = compare_libraries(cube(tilt=0.1), cube())
    r = ds.residual_percent.values
    assert r[..., -1].mean() > 4 and r[..., 0].mean() < -4  # +-5 % at the ends
    diff = np.abs(ds.ew_fastar - ds.ew_miles).sel(index="Hβ")
    assert float(diff.max()) < 0.02  # a linear tilt cancels in a pseudo-continuum index
    summary = comparison_summary(ds)
    assert summary["rms_residual_percent_median"] == pytest.approx(float(np.median(ds.rms_residual_percent)))
    assert set(summary["grid"]) == {"-0.40", "+0.00"}


def test_fastar_imf_for_miles_flavours():
    assert fastar_imf_for({"imf": "un", "slope": 1.3}) == {"imf": "unimodal", "imf_slope": 1.3}
    assert fastar_imf_for({"imf": "ku", "slope": 1.3}) == {"imf": "kroupa"}
    with pytest.raises(InputError, match="no counterpart"):
        fastar_imf_for({"imf": "bi", "slope": 1.3})


def test_observed_galaxy_takes_the_setting_nearest_its_snr():
    res = {
        k: {
            "systematic": {"t50": {"bias_miles_minus_fastar": b}},
            "fastar": {"coverage": {"max_abs_deviation_all": 0.1}},
            "miles": {"coverage": {"max_abs_deviation_all": 0.5}},
        }
        for k, b in (("clean", -3.0), ("snr20", -2.0), ("snr50", -2.5))
    }
    cross = {"results": res, "n_test": 10, "definition": "d"}
    assert library_systematic(cross, 55.0)["setting"] == "snr50"
    assert library_systematic(cross, 18.0)["bias_miles_minus_fastar"]["t50"] == -2.0
    assert library_systematic(cross, 400.0)["setting"] == "clean"
    assert library_systematic(None, 50.0)["measured"] is False

"""Observed spectra: the four readers, the preparation onto the model grid, every bad input's one message, and the
degradation that the matched posterior copies onto synthetic spectra."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galaxy_sbi.errors import InputError
from galaxy_sbi.spectra import matched
from galaxy_sbi.spectra.observation import (
    MASK_BITS,
    der_snr_noise,
    prepare,
    read_spectrum,
    resolve_path,
)

MODEL_WAVE = np.arange(3540.5, 7409.7, 0.9)
SETTINGS = {
    "min_overlap_angstrom": 1500.0,
    "min_good_fraction": 0.5,
    "sky_lines_angstrom": [5577.34],
    "sky_half_width_angstrom": 5.0,
    "emission_lines_angstrom": [4861.33, 5006.84, 6562.80],
    "emission_half_width_kms": 400.0,
}


def _spectrum(wave, seed=0):
    """A smooth continuum with an absorption line at 5175 A (rest) and its noise."""
    rng = np.random.default_rng(seed)
    flux = 100.0 * (1.0 + 1e-4 * (wave - 5000.0)) * (1 - 0.3 * np.exp(-0.5 * ((wave - 5175.0) / 3.0) ** 2))
    err = np.full(len(wave), 1.0)
    return flux + err * rng.standard_normal(len(wave)), err


def _sdss_file(path, z=0.01, vdisp=150.0, cls="GALAXY", ivar=None, and_mask=None):
    loglam = np.arange(np.log10(3800.0), np.log10(9200.0), 1e-4)
    wave = 10**loglam
    flux, err = _spectrum(wave / (1 + z))
    ivar = 1.0 / err**2 if ivar is None else ivar
    and_mask = np.zeros(len(wave), int) if and_mask is None else and_mask
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column("flux", "E", array=flux),
            fits.Column("loglam", "E", array=loglam),
            fits.Column("ivar", "E", array=ivar),
            fits.Column("and_mask", "J", array=and_mask),
            fits.Column("wdisp", "E", array=np.full(len(wave), 1.0)),
        ],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [
            fits.Column("Z", "E", array=[z]),
            fits.Column("VDISP", "E", array=[vdisp]),
            fits.Column("CLASS", "6A", array=[cls]),
        ],
        name="SPECOBJ",
    )
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(path)
    return path


def test_sdss_reader(tmp_path):
    spec = read_spectrum(_sdss_file(tmp_path / "s.fits"))
    assert spec.reader == "sdss" and spec.vacuum
    assert spec.redshift == pytest.approx(0.01, rel=1e-6)
    assert spec.sigma_kms == pytest.approx(150.0)
    # wdisp 1 pixel of 1e-4 dex: FWHM = 2.355 * lambda ln(10) 1e-4
    assert spec.instrumental_fwhm[0] == pytest.approx(2.3548 * spec.wavelength[0] * np.log(10) * 1e-4, rel=1e-3)
    star = read_spectrum(_sdss_file(tmp_path / "star.fits", vdisp=0.0, cls="STAR"))
    assert star.sigma_kms is None and "not usable" in star.notes[0]


def test_single_table_reader(tmp_path):
    wave = np.linspace(3700, 8000, 3000)
    flux, err = _spectrum(wave)
    cols = [
        fits.Column("wavelength", "D", array=wave),
        fits.Column("flux", "D", array=flux),
        fits.Column("inverse_variance", "D", array=1 / err**2),
        fits.Column("and_mask", "J", array=(np.arange(3000) == 5).astype(int)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(tmp_path / "t.fits")
    spec = read_spectrum(tmp_path / "t.fits")
    assert spec.reader == "table"
    assert np.allclose(spec.error, err) and spec.bad.sum() == 1 and spec.bad[5]


@pytest.mark.parametrize("kind", ["linear", "log10", "wave-log"])
def test_image1d_reader(tmp_path, kind):
    n = 2000
    hdr = fits.Header()
    if kind == "linear":
        hdr.update(CRVAL1=3700.0, CDELT1=2.0, CRPIX1=1.0, CTYPE1="WAVE", CUNIT1="Angstrom")
        wave = 3700.0 + 2.0 * np.arange(n)
    elif kind == "log10":
        hdr.update(CRVAL1=np.log10(3700.0), CDELT1=1e-4, CRPIX1=1.0, **{"DC-FLAG": 1})
        wave = 10 ** (np.log10(3700.0) + 1e-4 * np.arange(n))
    else:  # FITS paper III: lambda = CRVAL exp(CDELT (p - CRPIX) / CRVAL)
        hdr.update(CRVAL1=3700.0, CDELT1=0.8, CRPIX1=1.0, CTYPE1="WAVE-LOG", CUNIT1="Angstrom")
        wave = 3700.0 * np.exp(0.8 * np.arange(n) / 3700.0)
    flux, err = _spectrum(wave)
    hdus = [fits.PrimaryHDU(flux, header=hdr), fits.ImageHDU(err, name="ERROR")]
    fits.HDUList(hdus).writeto(tmp_path / "i.fits")
    spec = read_spectrum(tmp_path / "i.fits")
    assert spec.reader == "image1d"
    assert np.allclose(spec.wavelength, wave, rtol=1e-7)
    assert np.allclose(spec.error, err)


def test_text_reader_two_and_three_columns(tmp_path):
    wave = np.linspace(3700, 8000, 3000)
    flux, err = _spectrum(wave, seed=3)
    np.savetxt(tmp_path / "a.txt", np.c_[wave, flux, err])
    np.savetxt(tmp_path / "b.csv", np.c_[wave, flux], delimiter=",")
    three, two = read_spectrum(tmp_path / "a.txt"), read_spectrum(tmp_path / "b.csv")
    assert np.allclose(three.error, err)
    # DER_SNR of unit-variance noise on a smooth continuum is ~1 (the absorption line adds little)
    assert two.error[0] == pytest.approx(1.0, rel=0.1) and "DER_SNR" in two.notes[0]
    assert der_snr_noise(np.ones(100)) == 0.0


def test_prepare_sdss_like(tmp_path):
    spec = read_spectrum(_sdss_file(tmp_path / "s.fits", z=0.02))
    p = prepare(spec, MODEL_WAVE, redshift=spec.redshift, settings=SETTINGS)
    good = p.good
    # normalised to the median over good pixels; the blue end below 3800 / 1.02 A (rest) is uncovered
    assert np.median(p.flux[good]) == pytest.approx(1.0, abs=1e-6)
    uncovered = (p.mask_reason & MASK_BITS["uncovered"]) > 0
    assert uncovered[MODEL_WAVE < 3700].all() and not uncovered[MODEL_WAVE > 3800].any()
    assert ((p.mask_reason & MASK_BITS["emission"]) > 0)[np.abs(MODEL_WAVE - 5006.84) < 3].all()
    sky_rest = 5577.34 / 1.02
    assert ((p.mask_reason & MASK_BITS["sky"]) > 0)[np.abs(MODEL_WAVE - sky_rest) < 2].all()
    # the absorption line lands at its rest wavelength (5175 A in vacuum -> air shifts it by ~1.4 A)
    window = (MODEL_WAVE > 5150) & (MODEL_WAVE < 5200)
    assert MODEL_WAVE[window][np.argmin(p.flux[window])] == pytest.approx(5175.0 / 1.000278, abs=1.0)
    # flux ~100, error 1 per SDSS pixel; rebinned onto the finer model pixels the errors correlate and shrink a bit
    assert 90 < p.attrs["snr_median"] < 140


def test_bad_pixels_are_masked_on_the_model_grid(tmp_path):
    n = len(np.arange(np.log10(3800.0), np.log10(9200.0), 1e-4))
    and_mask = np.zeros(n, int)
    and_mask[1000:1010] = 1
    spec = read_spectrum(_sdss_file(tmp_path / "s.fits", and_mask=and_mask))
    p = prepare(spec, MODEL_WAVE, redshift=spec.redshift, settings=SETTINGS)
    from ppxf.ppxf_util import vac_to_air

    lo, hi = vac_to_air(spec.wavelength[[1000, 1009]]) / (1 + spec.redshift)
    inside = (MODEL_WAVE > lo + 1) & (MODEL_WAVE < hi - 1)
    assert ((p.mask_reason & MASK_BITS["bad_pixel"]) > 0)[inside].all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: _garbage(d), "cannot read as FITS"),
        (lambda d: _truncated(d), "cannot read as FITS"),
        (lambda d: d / "missing.fits", "no such file"),
        (lambda d: _table_without(d, "flux"), "no flux column"),
        (lambda d: _sdss_file(d / "m.fits", and_mask=np.ones(54000, int)[: _npix()]), "every pixel is masked"),
        (lambda d: _sdss_file(d / "n.fits", ivar=np.full(_npix(), np.nan)), "NaN inverse variance"),
        (lambda d: _sdss_file(d / "g.fits", ivar=-np.ones(_npix())), "negative inverse variance"),
    ],
)
def test_bad_files_one_message(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        read_spectrum(path)
    assert str(path) in str(info.value)


def test_bad_redshift_and_overlap(tmp_path):
    spec = read_spectrum(_sdss_file(tmp_path / "s.fits"))
    with pytest.raises(InputError, match="off the models"):
        prepare(spec, MODEL_WAVE, redshift=2.0, settings=SETTINGS)
    with pytest.raises(InputError, match=r"only \d+ A overlap"):
        prepare(spec, MODEL_WAVE, redshift=0.9, settings=SETTINGS)
    with pytest.raises(InputError, match="not a redshift"):
        prepare(spec, MODEL_WAVE, redshift=-1.0, settings=SETTINGS)


def test_all_pixels_masked_after_preparation(tmp_path):
    spec = read_spectrum(_sdss_file(tmp_path / "s.fits"))
    wide = dict(SETTINGS, emission_lines_angstrom=[5000.0], emission_half_width_kms=3e5)
    with pytest.raises(InputError, match="every pixel on the model grid is masked"):
        prepare(spec, MODEL_WAVE, redshift=spec.redshift, settings=wide)


def test_packaged_spectra_resolve():
    path = resolve_path("ppxf:spectra/NGC3522_SDSS_DR18.fits")
    assert path.is_file()
    spec = read_spectrum(path)
    assert spec.reader == "sdss" and 0.003 < spec.redshift < 0.005
    with pytest.raises(InputError, match="no installed package"):
        resolve_path("not_a_package_xyz:spectra/a.fits")


def test_broadening_and_degradation():
    w = MODEL_WAVE
    # instrument = models: only the galaxy's sigma remains
    s = matched.broadening_kms(w, 150.0, np.full(len(w), matched.MODEL_FWHM_ANGSTROM))
    assert np.allclose(s, 150.0)
    # a sharper instrument than the models and no galaxy sigma: nothing to add
    assert np.all(matched.broadening_kms(w, 0.0, np.full(len(w), 1.0)) == 0)
    line = 1 - 0.5 * np.exp(-0.5 * ((w - 5000.0) / 2.0) ** 2)  # resolved by the 0.9 A pixels
    b = matched.broaden_varying(line[None], w, np.full(len(w), 200.0))[0]
    # the line's equivalent width is conserved and its width is ~200 km/s
    assert np.sum(1 - b) == pytest.approx(np.sum(1 - line), rel=1e-3)
    sigma_a = np.sqrt(np.sum((1 - b) * (w - 5000.0) ** 2) / np.sum(1 - b))
    assert sigma_a == pytest.approx(np.hypot(2.0, 200.0 / 299792.458 * 5000.0), rel=0.03)
    good = np.ones(len(w), bool)
    good[:100] = False
    deg = matched.Degradation(w, np.zeros(len(w)), good, np.full(len(w), 0.01), fill=np.full(len(w), 7.0))
    out = deg.apply(np.tile(line, (200, 1)), np.random.default_rng(0))
    assert np.all(out[:, :100] == 7.0)
    assert np.median(out[:, good], axis=1) == pytest.approx(np.ones(200), abs=1e-6)
    assert np.std(out[:, 2000] - line[2000] / np.median(line[good])) == pytest.approx(0.01, rel=0.15)


def test_ood_check_flags_a_far_latent():
    rng = np.random.default_rng(0)
    train, held = rng.standard_normal((2000, 4)), rng.standard_normal((200, 4))
    settings = {"false_alarm": 0.05, "k_neighbours": 10, "mmd_n_shuffle": 50, "mmd_max_samples": 300,
                "mmd_n_calibration": 10}  # fmt: skip
    inside = matched.ood_check(train, held, np.zeros((1, 4)), settings, seed=1)
    outside = matched.ood_check(train, held, np.full((1, 4), 6.0), settings, seed=1)
    assert not inside["knn"]["out_of_distribution"]
    assert outside["knn"]["out_of_distribution"] and outside["out_of_distribution"]
    assert outside["mmd"]["galaxy_pvalue"] < inside["mmd"]["galaxy_pvalue"]


def test_draws_chi2_finds_the_best_fitting_draw():
    # labels (depth of one line) -> spectra; a bimodal posterior whose mean (depth 0.3) fits neither mode
    w = MODEL_WAVE
    line = np.exp(-0.5 * ((w - 5000.0) / 3.0) ** 2)

    class Lines:
        def from_labels(self, labels, names):
            return 1 - np.asarray(labels)[:, :1] * line

    good = np.ones(len(w), bool)
    error = np.full(len(w), 0.002)
    deg = matched.Degradation(w, np.zeros(len(w)), good, error)
    flux = (1 - 0.5 * line) / np.median(1 - 0.5 * line) + error * np.random.default_rng(0).standard_normal(len(w))
    draws = np.array([[0.1], [0.5], [0.1], [0.5]])
    best = matched.draws_chi2(flux, draws, ["depth"], Lines(), deg, error).min()
    assert best == pytest.approx(1.0, abs=0.1)  # the draw at the truth: noise only
    at_mean = matched.chi2_per_pixel(flux, Lines().from_labels(draws.mean(0, keepdims=True), None)[0], error, good)
    assert at_mean > 10 * best
    # many spectra at once: each one's best draw
    both = matched.best_draw_chi2(
        np.stack([flux, flux]), np.stack([draws, draws[::-1]], 1), ["depth"], Lines(), deg, error
    )
    assert np.allclose(both, best)


def test_chi2_reference_is_conditional_on_the_posterior_mean():
    # test spectra whose posteriors sit near (0, 0) reconstruct well (chi^2 ~ 1); those near (5, 5) badly (~30):
    # a galaxy at (0, 0) with chi^2 8 fits far worse than its neighbours and must be flagged, though the whole
    # test set's 95th percentile (~30) would pass it
    rng = np.random.default_rng(0)
    means = np.concatenate([rng.normal(0, 0.5, (500, 2)), rng.normal(5, 0.5, (500, 2))])
    chi2 = np.where(means[:, 0] < 2.5, 1.0, 30.0) * rng.chisquare(50, 1000) / 50
    pick = matched.nearest_posterior_means(means, np.zeros(2), 100)
    assert len(pick) == 100 and np.all(means[pick, 0] < 2.5)
    assert matched.chi2_check(8.0, chi2[pick], 0.05)["out_of_distribution"]
    assert not matched.chi2_check(8.0, chi2, 0.05)["out_of_distribution"]  # the unconditional reference misses it
    assert not matched.chi2_check(1.1, chi2[pick], 0.05)["out_of_distribution"]
    # the conditional test's false-alarm rate: members of the family drawn like the reference
    members = rng.chisquare(50, 2000) / 50
    assert np.mean([matched.chi2_check(c, chi2[pick], 0.05)["out_of_distribution"] for c in members]) < 0.1
    # measured the way the stage measures it: each test spectrum against its nearest others
    assert 0.02 < matched.chi2_false_alarm_rate(means, chi2, 100, 0.05) < 0.09
    # a galaxy at (5, 5) is judged against the badly reconstructed neighbours
    assert not matched.chi2_check(8.0, chi2[matched.nearest_posterior_means(means, np.full(2, 5.0), 100)], 0.05)[
        "out_of_distribution"
    ]


# --- helpers for the bad-file cases --------------------------------------------------------------------


def _npix():
    return len(np.arange(np.log10(3800.0), np.log10(9200.0), 1e-4))


def _garbage(d):
    (d / "x.fits").write_bytes(b"SIMPLE  = T" + b" " * 100)
    return d / "x.fits"


def _truncated(d):
    full = _sdss_file(d / "full.fits")
    data = full.read_bytes()
    (d / "cut.fits").write_bytes(data[: len(data) // 2])
    return d / "cut.fits"


def _table_without(d, column):
    wave = np.linspace(3700, 8000, 100)
    cols = [fits.Column("wavelength", "D", array=wave), fits.Column("ivar", "D", array=np.ones(100))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(d / "nf.fits")
    return d / "nf.fits"

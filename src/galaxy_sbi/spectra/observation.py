"""Observed spectra: reading the files users have, checking them, and preparing them like the training spectra.

Readers (``read_spectrum`` picks one from the file's content):
- SDSS spectrum files of DR9 and later: a ``COADD`` table (``loglam``, ``flux``, ``ivar``, ``and_mask``, ``wdisp``)
  and a ``SPECOBJ`` row (redshift ``Z``, ``VDISP``, ``CLASS``); vacuum wavelengths;
- the older single-table layout (one binary table with ``wavelength`` or ``loglam``, ``flux``, ``inverse_variance``
  / ``ivar`` or an error column, optional ``and_mask``), as earlier ``ppxf`` releases shipped SDSS spectra;
- 1-D FITS images with a linear or logarithmic wavelength WCS (astropy.wcs: ``WAVE``, ``WAVE-LOG``; IRAF's
  ``DC-FLAG = 1`` for log10), an optional error / inverse-variance extension;
- text files of two or three columns (wavelength, flux[, error]).
Without an error, the noise is estimated from the flux with DER_SNR (Stoehr et al. 2008) and said so.

``prepare`` turns one into a spectrum on the model grid: vacuum to air (ppxf's ``vac_to_air``), de-redshift,
flux-conserving rebinning (``spectres``), masks (bad pixels, the uncovered ends, sky residuals, emission lines),
and the training normalisation (divide by the median over good pixels). Every problem a user can fix ends in one
:class:`~galaxy_sbi.errors.InputError` naming the file, before any model is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

C_KMS = 299792.458
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
TEXT_SUFFIXES = {".txt", ".dat", ".csv", ".ascii", ".tsv"}

# the reason a model pixel is masked (bits of `mask_reason`)
MASK_BITS = {"bad_pixel": 1, "uncovered": 2, "sky": 4, "emission": 8}

# column names the single-table reader accepts, first match wins
WAVELENGTH_COLUMNS = ("wavelength", "wave", "lambda", "lam")
FLUX_COLUMNS = ("flux", "spec", "f_lambda")
IVAR_COLUMNS = ("inverse_variance", "ivar")
ERROR_COLUMNS = ("error", "err", "sigma", "noise", "flux_err")
MASK_COLUMNS = ("and_mask", "mask")


@dataclass
class ObservedSpectrum:
    """A spectrum as read from its file (observed frame)."""

    path: str
    wavelength: np.ndarray  # Angstrom, as in the file (vacuum or air: `vacuum`)
    flux: np.ndarray
    error: np.ndarray  # 1 sigma; inf for pixels without information
    bad: np.ndarray  # bool: flagged by the file (and_mask, ivar == 0)
    vacuum: bool
    reader: str
    redshift: float | None = None
    sigma_kms: float | None = None  # the file's velocity dispersion (SDSS VDISP), None when it gives none
    instrumental_fwhm: np.ndarray | None = None  # Angstrom per pixel, observed frame
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------


def der_snr_noise(flux: np.ndarray) -> float:
    """DER_SNR noise estimate (Stoehr et al. 2008): 1.482602 / sqrt(6) median |2 f_i - f_{i-2} - f_{i+2}|."""
    f = np.asarray(flux, float)
    f = f[np.isfinite(f)]
    if len(f) < 5:
        return np.nan
    return float(1.482602 / np.sqrt(6.0) * np.median(np.abs(2.0 * f[2:-2] - f[:-4] - f[4:])))


def _column(table, names, path, what, required=True):
    lower = {c.lower(): c for c in table.columns.names}
    for n in names:
        if n in lower:
            return np.asarray(table[lower[n]], float).ravel()
    if required:
        raise InputError(
            f"{path}: no {what} column (looked for {', '.join(names)}; it has {', '.join(table.columns.names)})"
        )
    return None


def _error_from_ivar(ivar: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(error, bad) from an inverse variance; NaN or negative values are refused (they are not 'no data')."""
    if np.any(np.isnan(ivar)):
        raise InputError(f"{path}: {int(np.isnan(ivar).sum())} pixels have a NaN inverse variance")
    if np.any(ivar < 0):
        raise InputError(f"{path}: {int((ivar < 0).sum())} pixels have a negative inverse variance")
    bad = ivar == 0
    with np.errstate(divide="ignore"):
        return np.where(bad, np.inf, 1.0 / np.sqrt(np.where(bad, 1.0, ivar))), bad


def _check_error(error: np.ndarray, path: str) -> np.ndarray:
    if np.any(np.isnan(error)):
        raise InputError(f"{path}: {int(np.isnan(error).sum())} pixels have a NaN error")
    if np.any(error < 0):
        raise InputError(f"{path}: {int((error < 0).sum())} pixels have a negative error")
    return error == 0  # a zero error is no information, not infinite S/N


def _estimated_error(flux, path, notes):
    noise = der_snr_noise(flux)
    if not np.isfinite(noise) or noise <= 0:
        raise InputError(f"{path}: no error given and none can be estimated from the flux (DER_SNR)")
    notes.append(f"no error in the file: constant noise {noise:.4g} estimated with DER_SNR")
    return np.full(len(flux), noise), np.zeros(len(flux), bool)


def read_sdss(hdul, path: str) -> ObservedSpectrum:
    """SDSS DR9+ spectrum file: COADD (loglam, flux, ivar, and_mask, wdisp) and SPECOBJ (Z, VDISP, CLASS)."""
    coadd = hdul["COADD"].data
    wavelength = 10 ** _column(coadd, ("loglam",), path, "loglam")
    flux = _column(coadd, ("flux",), path, "flux")
    error, bad = _error_from_ivar(_column(coadd, ("ivar",), path, "ivar"), path)
    and_mask = _column(coadd, ("and_mask",), path, "and_mask", required=False)
    if and_mask is not None:
        bad |= and_mask != 0
    wdisp = _column(coadd, ("wdisp",), path, "wdisp", required=False)
    # wdisp: the line-spread sigma in pixels of 1e-4 dex (ppxf's SDSS examples: FWHM = 2.355 wdisp dlambda)
    fwhm = None if wdisp is None else FWHM_PER_SIGMA * wdisp * wavelength * np.log(10.0) * 1e-4
    spec = ObservedSpectrum(path, wavelength, flux, error, bad, vacuum=True, reader="sdss", instrumental_fwhm=fwhm)
    if "SPECOBJ" in hdul:
        row = hdul["SPECOBJ"].data[0]
        names = hdul["SPECOBJ"].columns.names
        get = lambda k: row[k] if k in names else None  # noqa: E731
        spec.redshift = None if get("Z") is None else float(get("Z"))
        cls = str(get("CLASS") or "").strip()
        vdisp = get("VDISP")
        spec.meta.update(sdss_class=cls, sdss_subclass=str(get("SUBCLASS") or "").strip())
        # the pipeline fits VDISP only for galaxies; a star-like classification leaves it 0
        if vdisp is not None and float(vdisp) > 0 and cls == "GALAXY":
            spec.sigma_kms = float(vdisp)
        else:
            spec.notes.append(f"the file's velocity dispersion is not usable (VDISP {vdisp}, CLASS {cls!r})")
    return spec


def read_table(hdul, path: str) -> ObservedSpectrum:
    """A single binary table (wavelength or loglam, flux, inverse variance or error, optional and_mask)."""
    hdu = next((h for h in hdul if h.is_image is False and h.data is not None and len(h.data)), None)
    if hdu is None:
        raise InputError(f"{path}: no binary table with data")
    table = hdu.data
    lower = [c.lower() for c in table.columns.names]
    if any(n in lower for n in WAVELENGTH_COLUMNS):
        wavelength = _column(table, WAVELENGTH_COLUMNS, path, "wavelength")
    elif "loglam" in lower:
        wavelength = 10 ** _column(table, ("loglam",), path, "loglam")
    else:
        raise InputError(
            f"{path}: no wavelength column (looked for {', '.join(WAVELENGTH_COLUMNS + ('loglam',))}; "
            f"it has {', '.join(table.columns.names)})"
        )
    flux = _column(table, FLUX_COLUMNS, path, "flux")
    notes: list[str] = []
    ivar = _column(table, IVAR_COLUMNS, path, "inverse variance", required=False)
    if ivar is not None:
        error, bad = _error_from_ivar(ivar, path)
    else:
        error = _column(table, ERROR_COLUMNS, path, "error", required=False)
        error, bad = _estimated_error(flux, path, notes) if error is None else (error, _check_error(error, path))
    mask = _column(table, MASK_COLUMNS, path, "mask", required=False)
    if mask is not None:
        bad |= mask != 0
    return ObservedSpectrum(path, wavelength, flux, error, bad, vacuum=True, reader="table", notes=notes)


def wcs_wavelength(header, n: int) -> np.ndarray:
    """Wavelengths (Angstrom) of a 1-D image's pixels from its WCS: astropy.wcs for linear and WAVE-LOG axes,
    IRAF's DC-FLAG = 1 (log10 wavelength) by hand; metres or nm are converted."""
    from astropy import units as u
    from astropy.wcs import WCS

    if int(header.get("DC-FLAG", 0)) == 1:
        crval, crpix = float(header["CRVAL1"]), float(header.get("CRPIX1", 1.0))
        step = float(header.get("CDELT1", header.get("CD1_1", np.nan)))
        return 10 ** (crval + step * (np.arange(n) + 1 - crpix))
    wcs = WCS(header, naxis=1)
    values = wcs.pixel_to_world_values(np.arange(n))
    unit = wcs.wcs.cunit[0] or (u.m if wcs.wcs.ctype[0].startswith("WAVE") else u.AA)
    return np.asarray((np.asarray(values, float) * u.Unit(unit)).to_value(u.AA))


def read_image1d(hdul, path: str) -> ObservedSpectrum:
    """A 1-D FITS image with a wavelength WCS; error from an extension named ERROR / ERR / SIGMA or IVAR."""
    hdu = next(h for h in hdul if h.is_image and h.data is not None)
    flux = np.asarray(hdu.data, float).ravel()
    header = hdu.header
    if "CRVAL1" not in header:
        raise InputError(f"{path}: a 1-D image without a wavelength WCS (no CRVAL1)")
    if not ("CDELT1" in header or "CD1_1" in header):
        raise InputError(f"{path}: a 1-D image without a wavelength step (no CDELT1 or CD1_1)")
    wavelength = wcs_wavelength(header, len(flux))
    names = {h.name.upper(): h for h in hdul}
    notes: list[str] = []
    if "IVAR" in names:
        error, bad = _error_from_ivar(np.asarray(names["IVAR"].data, float).ravel(), path)
    elif err := next((names[k] for k in ("ERROR", "ERR", "SIGMA") if k in names), None):
        error = np.asarray(err.data, float).ravel()
        bad = _check_error(error, path)
    else:
        error, bad = _estimated_error(flux, path, notes)
    if len(error) != len(flux):
        raise InputError(f"{path}: the error has {len(error)} pixels, the flux {len(flux)}")
    vacuum = "VAC" in str(header.get("CTYPE1", "")).upper() or str(header.get("AIRORVAC", "air")).lower() == "vac"
    return ObservedSpectrum(path, wavelength, flux, error, bad, vacuum=vacuum, reader="image1d", notes=notes)


def read_text(path: str) -> ObservedSpectrum:
    """Two or three whitespace- or comma-separated columns: wavelength (Angstrom), flux[, error]."""
    try:
        text = Path(path).read_text()
        first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
        delimiter = "," if "," in first else None
        data = np.loadtxt(path, delimiter=delimiter, comments="#", ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as a table of numbers ({exc})") from None
    if data.shape[1] not in (2, 3):
        raise InputError(f"{path}: {data.shape[1]} columns; expected wavelength, flux and optionally error")
    notes: list[str] = []
    wavelength, flux = data[:, 0], data[:, 1]
    if data.shape[1] == 3:
        error = data[:, 2]
        bad = _check_error(error, path)
    else:
        error, bad = _estimated_error(flux, path, notes)
    return ObservedSpectrum(path, wavelength, flux, error, bad, vacuum=False, reader="text", notes=notes)


def read_spectrum(path: str | Path) -> ObservedSpectrum:
    """Read any of the supported layouts; one InputError naming the file for anything unreadable."""
    path = str(path)
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    if Path(path).suffix.lower() in TEXT_SUFFIXES:
        spec = read_text(path)
    else:
        from astropy.io import fits

        try:
            with fits.open(path, memmap=False) as hdul:
                for h in hdul:
                    _ = h.data  # a truncated file fails here, not later
                if "COADD" in hdul:
                    spec = read_sdss(hdul, path)
                elif any(h.is_image is False and h.data is not None for h in hdul):
                    spec = read_table(hdul, path)
                elif any(h.is_image and h.data is not None and np.ndim(h.data) >= 1 for h in hdul):
                    spec = read_image1d(hdul, path)
                else:
                    raise InputError(f"{path}: no spectrum in the file (no COADD, binary table or 1-D image)")
        except InputError:
            raise
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError, VerifyError... on broken files
            raise InputError(f"{path}: cannot read as FITS ({type(exc).__name__}: {exc})") from None
    return _checked(spec)


def _checked(spec: ObservedSpectrum) -> ObservedSpectrum:
    path = spec.path
    n = len(spec.flux)
    if n < 10 or len(spec.wavelength) != n or len(spec.error) != n:
        raise InputError(f"{path}: {n} flux values, {len(spec.wavelength)} wavelengths: not a spectrum")
    if not np.all(np.isfinite(spec.wavelength)) or np.any(np.diff(spec.wavelength) <= 0):
        raise InputError(f"{path}: the wavelengths are not finite and strictly increasing")
    spec.bad = spec.bad | ~np.isfinite(spec.flux) | ~np.isfinite(spec.error)
    if spec.bad.all():
        raise InputError(f"{path}: every pixel is masked (and_mask, zero inverse variance or non-finite flux)")
    return spec


# ---------------------------------------------------------------------------------------------
# preparation
# ---------------------------------------------------------------------------------------------


def line_mask(wavelength, lines, half_width_kms: float) -> np.ndarray:
    """True within +- half_width_kms of any of the lines (same frame as wavelength)."""
    w = np.asarray(wavelength, float)
    mask = np.zeros(w.shape, bool)
    for line in lines:
        mask |= np.abs(w / line - 1.0) * C_KMS <= half_width_kms
    return mask


@dataclass
class PreparedSpectrum:
    """An observed spectrum on the model grid, rest frame, air, normalised like the training spectra."""

    wavelength: np.ndarray
    flux: np.ndarray  # divided by `norm`; masked pixels hold 0 (use `good`)
    error: np.ndarray  # same units; inf where masked
    good: np.ndarray  # bool
    mask_reason: np.ndarray  # int bits of MASK_BITS
    instrumental_fwhm: np.ndarray  # Angstrom, rest frame, per model pixel
    attrs: dict


def prepare(
    spec: ObservedSpectrum,
    model_wavelength: np.ndarray,
    *,
    redshift: float,
    settings: dict,
    instrumental_fwhm_angstrom: float | None = None,
    mask_emission: bool = True,
) -> PreparedSpectrum:
    """The observation on the model grid (see the module docstring). ``settings``: the config's
    ``observed.preparation`` (min_overlap_angstrom, sky_lines_angstrom, sky_half_width_angstrom, emission_lines_angstrom,
    emission_half_width_kms, min_good_fraction)."""
    from ppxf.ppxf_util import vac_to_air
    from spectres import spectres

    path = spec.path
    model_wavelength = np.asarray(model_wavelength, float)
    if not np.isfinite(redshift) or redshift <= -1:
        raise InputError(f"{path}: redshift {redshift} is not a redshift")
    air = vac_to_air(spec.wavelength) if spec.vacuum else spec.wavelength
    rest = air / (1.0 + redshift)
    good_in = ~spec.bad
    lo, hi = rest[good_in].min(), rest[good_in].max()
    m_lo, m_hi = model_wavelength[0], model_wavelength[-1]
    overlap = min(hi, m_hi) - max(lo, m_lo)
    if overlap <= 0:
        raise InputError(
            f"{path}: at redshift {redshift:g} the spectrum covers {lo:.0f}-{hi:.0f} A rest frame, off the models "
            f"({m_lo:.0f}-{m_hi:.0f} A)"
        )
    if overlap < settings["min_overlap_angstrom"]:
        raise InputError(
            f"{path}: only {overlap:.0f} A overlap with the models ({lo:.0f}-{hi:.0f} A rest frame at z = {redshift:g} "
            f"against {m_lo:.0f}-{m_hi:.0f} A; at least {settings['min_overlap_angstrom']:g} A needed)"
        )
    # bad pixels: their flux is interpolated over so that spectres' sums stay finite, then every model pixel a
    # bad input pixel touches is masked
    flux = np.interp(rest, rest[good_in], spec.flux[good_in]) * (1.0 + redshift)
    error = np.where(good_in, spec.error, 0.0) * (1.0 + redshift)
    with np.errstate(invalid="ignore"):
        f_out, e_out = spectres(model_wavelength, rest, flux, error, fill=np.nan, verbose=False)
        bad_frac = spectres(model_wavelength, rest, spec.bad.astype(float), fill=np.nan, verbose=False)
    reason = np.zeros(len(model_wavelength), np.int16)
    uncovered = ~np.isfinite(f_out) | (model_wavelength < lo) | (model_wavelength > hi)
    reason[uncovered] |= MASK_BITS["uncovered"]
    reason[~uncovered & (np.nan_to_num(bad_frac, nan=1.0) > 0)] |= MASK_BITS["bad_pixel"]
    sky_rest = np.asarray(settings["sky_lines_angstrom"], float) / (1.0 + redshift)
    sky = np.zeros(len(model_wavelength), bool)
    for line in sky_rest:
        sky |= np.abs(model_wavelength - line) <= settings["sky_half_width_angstrom"] / (1.0 + redshift)
    reason[sky] |= MASK_BITS["sky"]
    if mask_emission:
        emission = line_mask(model_wavelength, settings["emission_lines_angstrom"], settings["emission_half_width_kms"])
        reason[emission] |= MASK_BITS["emission"]
    good = reason == 0
    covered = ~uncovered
    if not good.any():
        raise InputError(f"{path}: every pixel on the model grid is masked")
    if good.sum() < settings["min_good_fraction"] * covered.sum():
        raise InputError(
            f"{path}: only {good.sum()} of {covered.sum()} covered model pixels are unmasked "
            f"(minimum fraction {settings['min_good_fraction']:g})"
        )
    norm = float(np.median(f_out[good]))
    if not norm > 0:
        raise InputError(f"{path}: the median flux over good pixels is {norm:g}, not positive")
    if spec.instrumental_fwhm is not None:
        fwhm_in = spec.instrumental_fwhm / (1.0 + redshift)
        fwhm = np.interp(model_wavelength, rest, fwhm_in)
        fwhm_note = "from the file (rest frame)"
    elif instrumental_fwhm_angstrom is not None:
        fwhm = np.full(len(model_wavelength), float(instrumental_fwhm_angstrom) / (1.0 + redshift))
        fwhm_note = f"from the config, {instrumental_fwhm_angstrom:g} A observed frame"
    else:
        fwhm = np.full(len(model_wavelength), np.nan)
        fwhm_note = "unknown: taken equal to the models' (no extra instrumental broadening)"
    flux_n = np.where(good, f_out / norm, 0.0)
    error_n = np.where(good, e_out / norm, np.inf)
    snr = float(np.median(flux_n[good] / error_n[good]))
    fractions = {k: float(np.mean(reason & bit > 0)) for k, bit in MASK_BITS.items()}
    attrs = {
        "source_file": path,
        "reader": spec.reader,
        "redshift": float(redshift),
        "vacuum_to_air": int(spec.vacuum),
        "observed_rest_range_angstrom": [float(lo), float(hi)],
        "overlap_angstrom": float(overlap),
        "flux_norm": norm,
        "snr_median": snr,
        "good_fraction": float(good.mean()),
        "instrumental_fwhm": fwhm_note,
        "notes": "; ".join(spec.notes),
        **{f"masked_fraction_{k}": v for k, v in fractions.items()},
    }
    log.info(
        "%s: z %.5f, rest %.0f-%.0f A, %d of %d model pixels good, S/N %.1f",
        Path(path).name,
        redshift,
        lo,
        hi,
        good.sum(),
        len(good),
        snr,
    )
    return PreparedSpectrum(model_wavelength, flux_n, error_n, good, reason, fwhm, attrs)


def resolve_path(file: str) -> Path:
    """A galaxy's file: ``package:relative/path`` inside an installed package (importlib.resources, e.g.
    ``ppxf:spectra/NGC3522_SDSS_DR18.fits``), or a path."""
    if ":" in file and not Path(file).exists() and not (len(file) > 1 and file[1] == ":"):
        import importlib.resources as resources

        package, rel = file.split(":", 1)
        try:
            return Path(str(resources.files(package).joinpath(rel)))
        except ModuleNotFoundError:
            raise InputError(f"{file}: no installed package {package!r}") from None
    return Path(file)

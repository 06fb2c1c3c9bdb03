"""The wavelength dependence of real noise: error-spectrum shapes for the synthetic spectra's noise.

A real spectrum's error is not the same at every wavelength: an SDSS spectrum's error (in units of its median flux)
steps at the spectrograph's dichroic (~5900 A observed) and follows the throughput, the sky and the galaxy's own
photons elsewhere, over a range of ~0.7-1.5 of its median; white noise has one error everywhere. A *shape* here is an
observed error spectrum on the model grid in units of its own median (median 1 over the covered pixels), smoothed
over ``smooth_angstrom`` (spikes clipped at twice the running median, then a running mean: rebinning the SDSS pixels onto the models' 0.9 A
ones imprints a pixel-aliasing ripple on the errors that is not the noise's wavelength dependence), masked pixels
filled from their neighbours and the uncovered ends held at the nearest covered value.

Noise at S/N s with shape e(lambda): sigma(lambda) = e(lambda) / s in units of the median flux, so s stays the S/N at
the median flux level. The training copies draw one shape and a power u per chunk of spectra: e^u renormalised to
median 1, u = 0 being white noise, so the models see a family of slopes, not the listed galaxies' exact ones.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)


def error_shape(wavelength, error, good, smooth_angstrom: float) -> np.ndarray:
    """An error spectrum's shape on ``wavelength``: the good pixels' error, spikes clipped at twice its running
    median, averaged over ``smooth_angstrom``, divided by its median; masked pixels linear between good neighbours,
    the ends held constant."""
    from scipy.ndimage import median_filter, uniform_filter1d

    w, e, g = (np.asarray(a) for a in (wavelength, error, good))
    g = g.astype(bool) & np.isfinite(e) & (e > 0)
    if g.sum() < 2:
        raise ValueError("an error spectrum needs at least two good pixels")
    dw = float(np.median(np.diff(w)))
    size = max(int(round(smooth_angstrom / dw)) | 1, 1)  # odd
    # spikes (sky residuals, cosmics) beyond a factor 2 of the running median are clipped to it, then a running mean
    # removes the pixel-aliasing ripple (a median alone keeps an alternating ripple: it picks one of its phases)
    e = e[g]
    local = median_filter(e, size=size, mode="nearest")
    clipped = np.where((e > 2 * local) | (e < 0.5 * local), local, e)
    smooth = uniform_filter1d(clipped, size=size, mode="nearest")
    shape = np.interp(w, w[g], smooth)  # holds the end values outside the good range
    return shape / np.median(shape[g])


def shaped_error(shape: np.ndarray, power: float) -> np.ndarray:
    """shape^power renormalised to median 1 (power 0: white noise)."""
    s = np.asarray(shape, float) ** float(power)
    return s / np.median(s)


def mean_shape(shapes: np.ndarray) -> np.ndarray:
    """The geometric mean of several shapes (median 1): the fixed evaluation settings' noise."""
    s = np.exp(np.mean(np.log(np.atleast_2d(shapes)), axis=0))
    return s / np.median(s)


def random_shape(shapes: np.ndarray, power_range, rng: np.random.Generator) -> tuple[np.ndarray, int, float]:
    """One training chunk's noise shape: a listed shape drawn uniformly, raised to a power uniform in
    ``power_range``. Returns (shape, its index, the power)."""
    k = int(rng.integers(len(shapes)))
    u = float(rng.uniform(*power_range))
    return shaped_error(shapes[k], u), k, u


def error_spectra_dataset(galaxies: dict, wavelength, preparation: dict, smooth_angstrom: float) -> xr.Dataset:
    """The shapes of the listed observed spectra (name -> file, as ``observed.galaxies``' entries), prepared like
    the observations (rest frame at the file's redshift, model grid, sky and bad pixels masked; emission lines
    kept: their pixels' errors are the instrument's), as a dataset (shape, good) over (source, wavelength)."""
    from .observation import prepare, read_spectrum, resolve_path

    w = np.asarray(wavelength, float)
    shapes, goods, attrs = [], [], {}
    for name, entry in galaxies.items():
        path = resolve_path(entry["file"])
        spec = read_spectrum(path)
        z = entry.get("redshift", spec.redshift) or 0.0
        p = prepare(spec, w, redshift=float(z), settings=preparation, mask_emission=False)
        shapes.append(error_shape(w, p.error, p.good, smooth_angstrom))
        goods.append(p.good)
        snr = np.where(p.good, p.flux / p.error, np.nan)
        blue = p.good & (w < 4000)
        attrs[f"{name}_file"] = str(path)
        attrs[f"{name}_snr_median"] = float(np.nanmedian(snr))
        attrs[f"{name}_snr_median_below_4000A"] = float(np.nanmedian(snr[blue])) if blue.any() else float("nan")
        log.info(
            "%s: error shape from %s, %.2f-%.2f (5-95 %%) of its median",
            name,
            path.name,
            *np.percentile(shapes[-1], [5, 95]),
        )
    return xr.Dataset(
        {
            "shape": (("source", "wavelength"), np.array(shapes), {"long_name": "error / its median (smoothed)"}),
            "good": (("source", "wavelength"), np.array(goods, np.int8), {"long_name": "1: covered and unmasked"}),
        },
        coords={"source": list(galaxies), "wavelength": ("wavelength", w, {"units": "Angstrom", "frame": "rest, air"})},
        attrs={**attrs, "smooth_angstrom": float(smooth_angstrom), "description": __doc__.split("\n\n")[1]},
    )


def evaluation_shape(shapes: np.ndarray, mode: str) -> np.ndarray | None:
    """The fixed evaluation settings' noise shape (``error_spectra.evaluation``) from the sources' ``shapes``
    (:func:`load_shapes`): mean (their geometric mean) or white (None)."""
    if mode == "white":
        return None
    if mode != "mean":
        raise ValueError(f"error_spectra.evaluation must be mean or white, not {mode!r}")
    return mean_shape(shapes)


def load_shapes(path) -> np.ndarray:
    """(n_sources, n_wavelength) shapes of an error_spectra.nc."""
    with xr.open_dataset(path) as ds:
        return ds["shape"].values.astype(float)

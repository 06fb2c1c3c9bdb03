"""Realism operators for training on spectra that look like observations: noise, velocity broadening, masks.

All operators work on batches: flux of shape (n_spectra, n_wavelength) (or a single (n_wavelength,)
spectrum), numpy float arrays, fully vectorised over the batch. They are meant to be applied on the fly by
later stages (data augmentation), so they never modify their input.

- add_noise: Gaussian noise at a signal-to-noise ratio S/N per pixel.
- broaden: convolution with a Gaussian line-of-sight velocity distribution of dispersion sigma (km/s),
  done on a logarithmic-wavelength (constant velocity) grid, so the kernel has the same width in km/s at
  every wavelength; per-spectrum dispersions are allowed.
- apply_mask / wavelength_mask: bad pixels (emission lines, sky lines, detector gaps, missing coverage).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.fft import next_fast_len

C_KMS = 299792.458


# ---------------------------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------------------------


def add_noise(flux: np.ndarray, snr, rng: np.random.Generator, mode: str = "median", return_sigma: bool = False):
    """Add Gaussian noise of standard deviation sigma to every pixel.

    mode "median" (default): sigma = median(flux) / snr, one constant per spectrum (white noise; the S/N
    quoted for a spectrum is the S/N at its median flux level, the usual definition for continuum S/N).
    mode "flux": sigma = |flux| / snr per pixel (S/N the same in every pixel: deep absorption lines get
    less absolute noise).
    snr: a scalar or one value per spectrum (n_spectra,); inf gives no noise.
    Returns the noisy flux (float of the input's precision) and, with return_sigma, sigma (broadcastable).
    """
    flux = np.asarray(flux)
    snr = np.asarray(snr, float)
    if np.any(snr <= 0):
        raise ValueError("snr must be positive")
    if snr.ndim == 1:
        snr = snr[:, None]
    if mode == "median":
        sigma = np.median(flux, axis=-1, keepdims=True) / snr
    elif mode == "flux":
        sigma = np.abs(flux) / snr
    else:
        raise ValueError(f"unknown noise mode {mode!r} (median or flux)")
    noisy = (flux + sigma * rng.standard_normal(flux.shape)).astype(flux.dtype, copy=False)
    return (noisy, np.broadcast_to(sigma, flux.shape)) if return_sigma else noisy


# ---------------------------------------------------------------------------------------------
# velocity broadening
# ---------------------------------------------------------------------------------------------


def pixel_edges(wavelength: np.ndarray) -> np.ndarray:
    """Pixel edges of a grid given by its centres: midpoints, the ends extrapolated by half a pixel."""
    w = np.asarray(wavelength, float)
    mid = 0.5 * (w[1:] + w[:-1])
    return np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])


def rebin_matrix(edges_in: np.ndarray, edges_out: np.ndarray):
    """Sparse (n_out x n_in) flux-conserving rebinning operator for per-pixel *integrated* flux (counts).

    Entry (o, i) is the fraction of input pixel i that falls inside output pixel o (the flux density is
    taken as constant inside each input pixel), so counts_out = R @ counts_in. Output pixels outside the
    input range receive nothing.
    """
    from scipy import sparse

    e_in = np.asarray(edges_in, float)
    e_out = np.asarray(edges_out, float)
    lo, hi = e_out[:-1], e_out[1:]
    first = np.clip(np.searchsorted(e_in, lo, side="right") - 1, 0, len(e_in) - 2)
    last = np.clip(np.searchsorted(e_in, hi, side="left") - 1, 0, len(e_in) - 2)
    rows, cols, vals = [], [], []
    for d in range(int((last - first).max()) + 1):
        i = np.minimum(first + d, len(e_in) - 2)
        ok = first + d <= last
        overlap = np.minimum(hi, e_in[i + 1]) - np.maximum(lo, e_in[i])
        ok &= overlap > 0
        rows.append(np.flatnonzero(ok))
        cols.append(i[ok])
        vals.append(overlap[ok] / (e_in[i + 1] - e_in[i])[ok])
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(e_out) - 1, len(e_in) - 1)
    )


def rebin(edges_in: np.ndarray, counts: np.ndarray, edges_out: np.ndarray) -> np.ndarray:
    """Flux-conserving rebinning of counts (..., n_in) to (..., n_out); see rebin_matrix."""
    counts = np.asarray(counts, float)
    R = rebin_matrix(edges_in, edges_out)
    return (R @ counts.reshape(-1, counts.shape[-1]).T).T.reshape(counts.shape[:-1] + (R.shape[0],))


def log_grid(wavelength: np.ndarray, oversample: int = 2) -> tuple[np.ndarray, float]:
    """Edges of a logarithmic grid covering exactly the input grid's pixels, with a velocity step no larger
    than the finest input pixel divided by `oversample`. Returns (edges, velocity step in km/s)."""
    edges = pixel_edges(wavelength)
    span = np.log(edges[-1] / edges[0])
    n = int(np.ceil(span / (np.min(np.diff(np.log(edges))) / oversample)))
    dlnl = span / n
    log_edges = edges[0] * np.exp(dlnl * np.arange(n + 1))
    log_edges[-1] = edges[-1]
    return log_edges, dlnl * C_KMS


_OPERATORS: dict = {}


def _operators(wavelength: np.ndarray, oversample: int):
    """(linear edges, log edges, velocity step, R to log, R back), cached per wavelength grid."""
    key = (np.asarray(wavelength, float).tobytes(), oversample)
    if key not in _OPERATORS:
        edges = pixel_edges(wavelength)
        log_edges, velscale = log_grid(wavelength, oversample)
        _OPERATORS.clear()  # one grid at a time is the common case; keep memory bounded
        _OPERATORS[key] = (edges, log_edges, velscale, rebin_matrix(edges, log_edges), rebin_matrix(log_edges, edges))
    return _OPERATORS[key]


def broaden(flux: np.ndarray, wavelength: np.ndarray, sigma_kms, oversample: int = 2) -> np.ndarray:
    """Convolve spectra with a Gaussian line-of-sight velocity distribution of dispersion sigma_kms.

    Steps: the flux density on the (linear or any monotone) input grid is rebinned flux-conservingly to a
    logarithmic grid, where a velocity shift is a constant pixel shift (velocity step = finest input pixel /
    oversample); there it is convolved with the Gaussian through the FFT using the Gaussian's analytic Fourier
    transform exp(-2 pi^2 sigma_pix^2 f^2) (exact also for sub-pixel sigma, the approach of Cappellari 2017,
    ppxf); then it is rebinned back. Total flux is conserved (up to what the kernel carries past the ends,
    where the spectrum is continued by odd reflection). sigma_kms: scalar or (n_spectra,); 0 is the
    identity up to the two rebinnings (which broaden a line by about a pixel / sqrt(12) in quadrature, each).

    The broadening adds in quadrature to what the spectrum has: to go from the models' 2.51 A FWHM to an
    instrument + galaxy dispersion, pass sqrt(sigma_target^2 - sigma_model^2) in km/s.
    """
    flux = np.asarray(flux)
    single = flux.ndim == 1
    f2 = np.atleast_2d(flux).astype(float)
    sigma = np.broadcast_to(np.asarray(sigma_kms, float), (f2.shape[0],))
    if np.any(sigma < 0):
        raise ValueError("sigma_kms must be non-negative")
    edges, log_edges, velscale, to_log, to_linear = _operators(wavelength, oversample)
    counts = (to_log @ (f2 * np.diff(edges)).T).T
    sigma_pix = sigma / velscale
    pad = int(np.ceil(6 * sigma_pix.max())) + 2
    n = next_fast_len(counts.shape[1] + 2 * pad)  # a length with small prime factors: the FFT is ~50x faster
    # odd reflection continues the local slope (counts per log pixel grow with wavelength even for flat f_lambda)
    padded = np.pad(counts, ((0, 0), (pad, n - counts.shape[1] - pad)), mode="reflect", reflect_type="odd")
    freq = np.fft.rfftfreq(n)
    transfer = np.exp(-2.0 * (np.pi * sigma_pix[:, None] * freq[None, :]) ** 2)
    smoothed = np.fft.irfft(np.fft.rfft(padded, axis=1) * transfer, n=n, axis=1)[:, pad : pad + counts.shape[1]]
    out = (to_linear @ smoothed.T).T / np.diff(edges)
    out = out.astype(flux.dtype if flux.dtype.kind == "f" else float, copy=False)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def wavelength_mask(wavelength: np.ndarray, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean mask, True for pixels inside any of the (low, high) wavelength ranges (bad pixels)."""
    w = np.asarray(wavelength, float)
    mask = np.zeros(w.shape, bool)
    for lo, hi in ranges:
        mask |= (w >= lo) & (w <= hi)
    return mask


def apply_mask(flux: np.ndarray, mask: np.ndarray, fill_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Set masked pixels (mask True = bad) to fill_value; returns (masked flux, weights 1 good / 0 bad).

    mask: (n_wavelength,) for the whole batch or (n_spectra, n_wavelength) per spectrum. The weights let a
    loss or an encoder ignore the masked pixels instead of learning the fill value.
    """
    flux = np.asarray(flux)
    mask = np.broadcast_to(np.asarray(mask, bool), flux.shape)
    weights = (~mask).astype(flux.dtype if flux.dtype.kind == "f" else float)
    return np.where(mask, np.asarray(fill_value, flux.dtype if flux.dtype.kind == "f" else float), flux), weights

"""The full-spectrum-fitting baseline: pPXF (Cappellari 2017, 2023) with the project's own SSPs.

The SSP grid (``results/ssp/ssp_grid.nc``) is written in the format ``ppxf.sps_util.sps_lib`` reads (templates,
masses, lam, ages, metals, fwhm). Templates keep one common normalisation (``norm_range=None``), so pPXF's weights
are proportional to the mass formed (our SSPs are per unit mass formed; ``masses`` = 1). A fit follows pPXF's
documented recipe: kinematics first, then the populations with the kinematics fixed: an unregularised fit, the
noise rescaled to chi^2 / DOF = 1, and ``regul`` raised until chi^2 has grown by sqrt(2 N_good); uncertainties
from a wild bootstrap of the residuals (Kacharov et al. 2018, as in pPXF's population-bootstrap example).
The mass weights become the cumulative formed mass in cosmic time (each template's mass spread over its age
bin), interpolated at 10 ... 90 %, and a mass-weighted [M/H].
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def write_sps_templates(grid, path: str | Path, fwhm_angstrom: float = 2.51) -> Path:
    """The SSP grid as an ``sps_lib`` npz: templates (n_lam, n_age, n_metal), masses (formed: 1), lam, ages,
    metals, fwhm (the models' 2.51 Å FWHM)."""
    flux = grid["flux"].transpose("wavelength", "age", "metallicity")
    ages, metals = grid["age"].values, grid["metallicity"].values
    lam = grid["wavelength"].values
    path = Path(path)
    np.savez_compressed(
        path,
        templates=flux.values.astype(float),
        masses=np.ones((len(ages), len(metals))),
        lam=lam,
        ages=ages,
        metals=metals,
        fwhm=np.full(len(lam), float(fwhm_angstrom)),
    )
    return path


def cumulative_from_mass_weights(weights, ages, t_obs: float, t_start: float) -> tuple[np.ndarray, np.ndarray]:
    """(cosmic times of the age-bin edges, ascending; cumulative formed-mass fraction there) from mass weights
    (n_age, n_metal): each age's mass spread uniformly over its age bin (midpoints between the template ages,
    clipped to the SFH window)."""
    m = np.asarray(weights, float).sum(axis=1)
    ages = np.asarray(ages, float)
    edges_age = np.concatenate([[ages[0] - 0.5 * (ages[1] - ages[0])], 0.5 * (ages[1:] + ages[:-1])])
    edges_age = np.append(edges_age, ages[-1] + 0.5 * (ages[-1] - ages[-2]))
    edges_age = np.clip(edges_age, 0.0, t_obs - t_start)
    t_edges = t_obs - edges_age[::-1]  # ascending formation time: oldest bin first
    cum = np.concatenate([[0.0], np.cumsum(m[::-1])])
    return t_edges, cum / cum[-1]


def percentiles_from_mass_weights(weights, ages, t_obs: float, t_start: float, percentiles) -> np.ndarray:
    """Times (cosmic, Gyr) at which ``percentiles`` % of the mass had formed, from mass weights (n_age, n_metal)
    (:func:`cumulative_from_mass_weights`), the cumulative interpolated linearly."""
    t_edges, cum = cumulative_from_mass_weights(weights, ages, t_obs, t_start)
    # interpolate the time at which the cumulative reaches each fraction on the rising parts only (both ends of
    # every bin that holds mass): a bin without mass would make the cumulative flat, a clipped bin is a jump
    rising = np.diff(cum) > 0
    keep = np.append(rising, False) | np.insert(rising, 0, False)
    return np.interp(np.asarray(percentiles, float) / 100.0, cum[keep], t_edges[keep])


def load_templates(sps_file: str | Path, wavelength, fwhm_gal=None):
    """pPXF's templates of an ``sps_lib`` file, log-rebinned at the velocity scale of spectra on ``wavelength``
    (one set for every spectrum of that grid: not part of a fit's time). ``fwhm_gal``: the spectra's line-spread
    FWHM (Å, a scalar or one per pixel of ``wavelength``); the templates are then broadened to it (``sps_lib``),
    so the fitted sigma is the galaxy's. None: the templates' own resolution (synthetic spectra of these SSPs)."""
    from ppxf import ppxf_util as util
    from ppxf import sps_util

    velscale = util.log_rebin(np.asarray(wavelength, float), np.ones(len(wavelength)))[2]
    if fwhm_gal is not None and np.ndim(fwhm_gal):
        fwhm_gal = {"lam": np.asarray(wavelength, float), "fwhm": np.asarray(fwhm_gal, float)}
    return sps_util.sps_lib(str(sps_file), velscale, fwhm_gal=fwhm_gal, norm_range=None), velscale


def log_rebinned(wavelength, flux, sigma, good=None, edge_pixels: int = 40):
    """A spectrum as pPXF fits it: (galaxy, noise, ln_lam, velscale, goodpixels) on the log-lambda grid, without its
    ``edge_pixels`` end pixels (the templates must cover it at every trial velocity), galaxy and noise divided by the
    galaxy's median over good pixels. ``sigma``: a constant or one per pixel; ``good``: bool per pixel (None: all);
    a log pixel is good when no bad input pixel contributes to it."""
    from ppxf import ppxf_util as util

    wavelength = np.asarray(wavelength, float)
    good_in = np.ones(len(wavelength), bool) if good is None else np.asarray(good, bool)
    flux_in = np.where(good_in, np.asarray(flux, float), np.median(np.asarray(flux, float)[good_in]))
    galaxy, ln_lam, velscale = util.log_rebin(wavelength, flux_in)
    cut = slice(edge_pixels, len(galaxy) - edge_pixels)
    galaxy, ln_lam = galaxy[cut], ln_lam[cut]
    goodpixels = np.flatnonzero(util.log_rebin(wavelength, (~good_in).astype(float))[0][cut] <= 0)
    scale = np.median(galaxy[goodpixels])
    if np.ndim(sigma):
        sig_in = np.where(good_in, np.asarray(sigma, float), np.nanmax(np.asarray(sigma, float)[good_in]))
        noise = util.log_rebin(wavelength, sig_in)[0][cut] / scale
    else:
        noise = np.full_like(galaxy, float(sigma) / scale)
    return galaxy / scale, noise, ln_lam, velscale, goodpixels


def fit_ppxf(
    wavelength,
    flux,
    sigma,
    templates,
    *,
    t_obs: float,
    t_start: float,
    percentiles,
    n_bootstrap: int = 10,
    seed: int = 0,
    regul_range=(1e-1, 1e4),
    n_regul_steps: int = 8,
    edge_pixels: int = 40,
    good=None,
    mdegree: int = 0,
) -> dict:
    """pPXF's recipe on one spectrum of noise ``sigma`` (a constant or one per pixel); ``templates``: the
    (sps_lib, velscale) of :func:`load_templates`, or an ``sps_lib`` file. ``good``: pixels to fit (bool per
    pixel; None: all); ``mdegree``: pPXF's multiplicative Legendre polynomial (flux calibration and dust of an
    observed spectrum; 0 for synthetic ones). Returns the labels (t10 ... t90, [M/H]), their bootstrap sd, the
    chosen regul, chi^2 of the regularised fit and its target, the kinematics, the mass weights, the best fit,
    the number of fits and the wall time (the fit alone)."""
    from ppxf.ppxf import ppxf

    sps, velscale_t = templates if isinstance(templates, tuple) else load_templates(templates, wavelength)
    start = time.perf_counter()
    galaxy, noise, ln_lam, velscale, goodpixels = log_rebinned(wavelength, flux, sigma, good, edge_pixels)
    if not np.isclose(velscale, velscale_t):
        raise ValueError(f"templates at velscale {velscale_t:.4g} km/s, the spectrum at {velscale:.4g}")
    n_age, n_met = sps.templates.shape[1:]
    templates = sps.templates.reshape(sps.templates.shape[0], -1)
    common = dict(
        velscale=velscale,
        degree=-1,
        mdegree=mdegree,
        lam=np.exp(ln_lam),
        lam_temp=sps.lam_temp,
        quiet=True,
        goodpixels=goodpixels,
    )
    n_fits = 0

    def run(gal, noise_, regul, kin=None):
        nonlocal n_fits
        n_fits += 1
        kw = dict(start=[0.0, 3 * velscale] if kin is None else kin, moments=2, bounds=[[-500, 500], [1, 1000]])
        if kin is not None:
            kw["fixed"] = [1, 1]
        if regul > 0:
            kw.update(regul=regul, reg_dim=(n_age, n_met), reg_ord=2)
        return ppxf(templates, gal, noise_, **common, **kw)

    kin = run(galaxy, noise, 0).sol  # kinematics first, then fixed
    fit0 = run(galaxy, noise, 0, kin)
    mpoly = np.ones_like(galaxy)
    if mdegree > 0:
        # the multiplicative polynomial of the unregularised fit, then held fixed: with it free every regularised
        # fit is non-linear and ~100x slower, and regularisation hardly moves the continuum
        mpoly = fit0.mpoly
        galaxy, noise = galaxy / mpoly, noise / mpoly
        common["mdegree"] = 0
        fit0 = run(galaxy, noise, 0, kin)
    noise = noise * np.sqrt(fit0.chi2)  # chi^2 / DOF = 1
    n_good = len(goodpixels)
    chi2_0 = run(galaxy, noise, 0, kin).chi2 * n_good
    target = chi2_0 + np.sqrt(2 * n_good)
    lo, hi = np.log10(regul_range[0]), np.log10(regul_range[1])
    best = None
    for _ in range(n_regul_steps):  # bisection in log10 regul: chi^2 grows with regul
        mid = 0.5 * (lo + hi)
        fit = run(galaxy, noise, 10**mid, kin)
        if fit.chi2 * n_good > target:
            hi = mid
        else:
            lo, best = mid, (10**mid, fit)
    regul, fit = best if best is not None else (10**lo, run(galaxy, noise, 10**lo, kin))

    def labels(pp):
        w = pp.weights.reshape(n_age, n_met)
        t = percentiles_from_mass_weights(w, sps.age_grid[:, 0], t_obs, t_start, percentiles)
        mh = float(np.sum(w * sps.metal_grid) / np.sum(w))
        return np.append(t, mh)

    estimate = labels(fit)
    rng = np.random.default_rng(seed)
    resid = galaxy - fit.bestfit
    boots = []
    for _ in range(n_bootstrap):  # wild bootstrap: the residuals with random signs
        boots.append(labels(run(fit.bestfit + resid * rng.choice([-1.0, 1.0], len(resid)), noise, regul, kin)))
    weights = fit.weights.reshape(n_age, n_met)
    return {
        "labels": estimate,
        "bootstrap_sd": np.std(boots, axis=0, ddof=1) if n_bootstrap > 1 else np.full(len(estimate), np.nan),
        "regul": float(regul),
        "chi2": float(fit.chi2 * n_good),
        "chi2_target": float(target),
        "velocity_kms": float(kin[0]),
        "sigma_kms": float(kin[1]),
        "weights": weights / weights.sum(),
        "ages": sps.age_grid[:, 0],
        "metals": sps.metal_grid[0],
        "lam": np.exp(ln_lam),
        "galaxy": galaxy * mpoly,
        "bestfit": fit.bestfit * mpoly,
        "mpoly": mpoly,
        "goodpixels": goodpixels,
        "n_fits": n_fits,
        "seconds": time.perf_counter() - start,
    }

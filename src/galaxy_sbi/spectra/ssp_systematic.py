"""The SSP-library systematic: FASTAR, which the models are trained on, against real MILES SSPs.

- :func:`fastar_twin` synthesises FASTAR SSPs at a MILES folder's ages and [M/H] with the same IMF, so that
  :func:`compare_libraries` measures the library and isochrones (not the IMF): shape residuals in per cent over
  wavelength (both divided by their median, the training normalisation), the ratio of their luminosities per unit
  mass formed, and the Lick indices of both.
- :func:`cross_library_test`: the FASTAR-trained encoder + posterior on test spectra synthesised from the MILES SSPs
  (the family's own test SFHs, the same forward model, the same noise draws) beside the same spectra from FASTAR:
  the bias and coverage every observed galaxy inherits from the SSP library.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ..errors import InputError
from .latents import LINE_INDICES, equivalent_width
from .ssp import interpolate_library, synthesize_fastar
from .synth import build_cell, cell_name

log = logging.getLogger(__name__)

FASTAR_AGE_RANGE_GYR = (0.02, 14.0)


def fastar_imf_for(flavour: dict) -> dict:
    """synthesize_fastar's IMF arguments for a MILES flavour (unimodal: the same slope; Kroupa universal 1.30)."""
    if flavour["imf"] == "un":
        return {"imf": "unimodal", "imf_slope": float(flavour["slope"])}
    if flavour["imf"] == "ku" and abs(float(flavour["slope"]) - 1.30) < 1e-6:
        return {"imf": "kroupa"}
    raise InputError(
        f"FASTAR has no counterpart of the MILES IMF {flavour['imf']}{flavour['slope']:.2f}: compare unimodal (un) "
        "or Kroupa universal 1.30 (ku) models"
    )


def fastar_twin(miles: xr.Dataset, flavour: dict, progress: bool = True) -> xr.Dataset:
    """FASTAR SSPs at the MILES cube's ages (inside FASTAR's 0.02-14 Gyr) and [M/H], with the MILES IMF."""
    ages = [a for a in miles.age.values if FASTAR_AGE_RANGE_GYR[0] <= a <= FASTAR_AGE_RANGE_GYR[1]]
    return synthesize_fastar(ages, miles.metallicity.values, progress=progress, **fastar_imf_for(flavour))


def compare_libraries(fastar: xr.Dataset, miles: xr.Dataset) -> xr.Dataset:
    """Residuals FASTAR / MILES - 1 (per cent, both median-normalised), luminosity ratios and Lick indices on the
    common (metallicity, age) grid; the summary numbers go into the attributes."""
    if fastar.wavelength.size != miles.wavelength.size or not np.allclose(fastar.wavelength, miles.wavelength):
        raise InputError("FASTAR and MILES spectra are on different wavelength grids")
    m = miles["flux"].sel(age=fastar.age.values, metallicity=fastar.metallicity.values, method="nearest")
    f_raw, m_raw = fastar["flux"].values.astype(float), m.values.astype(float)
    f_med, m_med = np.median(f_raw, axis=-1), np.median(m_raw, axis=-1)
    residual = 100.0 * ((f_raw / f_med[..., None]) / (m_raw / m_med[..., None]) - 1.0)
    wave = fastar.wavelength.values
    names = [n for n, (band, blue, red) in LINE_INDICES.items() if blue[0] >= wave[0] and red[1] <= wave[-1]]
    ew = {
        lib: np.stack(
            [equivalent_width(x.reshape(-1, x.shape[-1]), wave, n).reshape(x.shape[:-1]) for n in names], axis=-1
        )
        for lib, x in (("fastar", f_raw), ("miles", m_raw))
    }
    dims = ("metallicity", "age")
    rms = np.sqrt(np.mean(residual**2, axis=-1))
    ds = xr.Dataset(
        {
            "residual_percent": (dims + ("wavelength",), residual.astype(np.float32), {"units": "%"}),
            "rms_residual_percent": (dims, rms, {"units": "%", "long_name": "rms over wavelength of the residual"}),
            "luminosity_ratio": (
                dims,
                f_med / m_med,
                {"long_name": "median L_lambda per Msun formed, FASTAR / MILES (IMF normalisation and M/L)"},
            ),
            "ew_fastar": (dims + ("index",), ew["fastar"], {"units": "Angstrom"}),
            "ew_miles": (dims + ("index",), ew["miles"], {"units": "Angstrom"}),
        },
        coords={
            "metallicity": fastar.metallicity.values,
            "age": fastar.age.values,
            "wavelength": wave,
            "index": np.array(names, dtype=str),
        },
    )
    old = ds.age.values >= 3.0
    ew_diff = ds.ew_fastar - ds.ew_miles
    ds.attrs.update(
        {
            "definition": "residual = (FASTAR / median) / (MILES / median) - 1; same ages, [M/H] and IMF",
            "fastar": f"{fastar.attrs.get('source_detail', 'FASTAR')}; IMF {fastar.attrs.get('imf')}",
            "miles": f"{miles.attrs.get('library', 'MILES')} ({miles.attrs.get('source_detail', '')}); "
            f"IMF {miles.attrs.get('imf')}; isochrones {miles.attrs.get('isochrones')}",
            "rms_residual_percent_median": float(np.median(rms)),
            "rms_residual_percent_max": float(rms.max()),
            "rms_residual_percent_median_age_ge_3gyr": float(np.median(rms[:, old])),
            "luminosity_ratio_median": float(np.median(ds.luminosity_ratio)),
            "ew_difference_median_age_ge_3gyr": str(
                {n: round(float(ew_diff.sel(index=n).values[:, old].mean()), 3) for n in names}
            ),
        }
    )
    return ds


def comparison_summary(ds: xr.Dataset) -> dict:
    """The numbers of :func:`compare_libraries` as JSON: the attributes plus the per-(age, [M/H]) table."""
    out = {k: v for k, v in ds.attrs.items() if k != "ew_difference_median_age_ge_3gyr"}
    old = ds.age.values >= 3.0
    diff = (ds.ew_fastar - ds.ew_miles).values
    out["ew_difference_fastar_minus_miles_angstrom"] = {
        str(n): {
            "mean_age_ge_3gyr": float(diff[:, old, i].mean()),
            "mean_age_lt_3gyr": float(diff[:, ~old, i].mean()),
            "miles_range_age_ge_3gyr": [
                float(ds.ew_miles.values[:, old, i].min()),
                float(ds.ew_miles.values[:, old, i].max()),
            ],
        }
        for i, n in enumerate(ds["index"].values)
    }
    out["grid"] = {
        f"{m:+.2f}": {
            f"{a:g}": {
                "rms_percent": float(ds.rms_residual_percent.sel(metallicity=m, age=a)),
                "luminosity_ratio": float(ds.luminosity_ratio.sel(metallicity=m, age=a)),
            }
            for a in ds.age.values
        }
        for m in ds.metallicity.values
    }
    return out


# ---------------------------------------------------------------------------------------------
# the FASTAR-trained model on MILES-synthesised spectra
# ---------------------------------------------------------------------------------------------


def test_spectra(sfh: xr.Dataset, grid: xr.Dataset, metallicities, spectra_cfg: dict, seed: int):
    """(flux, labels, sfh index, mass fraction below the youngest SSP) of the family's test SFHs in every cell."""
    # MILES starts at 63 Myr: the clamped mass is reported; both libraries at the cells' [M/H] (the same truths)
    cfg = {**spectra_cfg, "age_edges": "clamp", "metallicity_sampling": "cells"}
    parts = []
    for met in metallicities:
        ds = build_cell(sfh, grid, cell_name(float(met)), cfg, seed)
        test = ds["split"].values == "test"
        parts.append(
            (
                ds.flux.values[test],
                ds.labels.values[test],
                ds.sample.values[test],
                ds.mass_fraction_below_min_age.values[test],
            )
        )
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def cross_library_test(
    post,
    encoder,
    sfh: xr.Dataset,
    fastar_grid: xr.Dataset,
    miles: xr.Dataset,
    spectra_cfg: dict,
    snrs,
    n_samples: int,
    seed: int,
    batch_size: int = 512,
    instrument: dict | None = None,
) -> dict:
    """Evaluation of the FASTAR-trained posterior on the family's test SFHs synthesised from FASTAR and from MILES
    ([M/H] cells inside the MILES grid), clean and at each S/N with the same noise draws for both libraries. With
    ``instrument`` (``evaluation.degraded``) and a posterior told sigma, the noisy spectra are first broadened to
    the instrument's FWHM, as that NPE's training copies are (the evaluation's on-grid noisy sets do the same)."""
    from .evaluation import told_instrument, white_noise_latents
    from .posterior import evaluate_posterior

    instrument = told_instrument(post, instrument) if instrument is not None else None

    if "alpha" in fastar_grid.dims:
        raise InputError("the cross-library test needs a model without an [alpha/Fe] axis (the MILES models are base)")
    lo, hi = float(miles.metallicity.min()), float(miles.metallicity.max())
    mets = [float(m) for m in fastar_grid.metallicity.values if lo - 1e-9 <= m <= hi + 1e-9]
    if not mets:
        raise InputError(f"no [M/H] cell of the model grid lies inside the MILES models' [{lo}, {hi}]")
    miles_grid = interpolate_library(miles, mets)
    libraries = {"fastar": fastar_grid, "miles": miles_grid}
    spectra = {name: test_spectra(sfh, grid, mets, spectra_cfg, seed) for name, grid in libraries.items()}
    if not np.array_equal(spectra["fastar"][1], spectra["miles"][1]):
        raise RuntimeError("FASTAR and MILES test sets differ in their labels")
    settings = ["clean"] + [f"snr{float(s):g}" for s in snrs]
    out = {"metallicity_cells": mets, "n_test": int(len(spectra["miles"][1])), "results": {}}
    out["n_sfh"] = int(len(np.unique(spectra["miles"][2])))
    below = spectra["miles"][3]
    out["miles_mass_fraction_below_youngest_ssp"] = {"median": float(np.median(below)), "max": float(below.max())}
    arrays = {}
    for setting in settings:
        out["results"][setting] = {}
        for name, (flux, labels, _, _) in spectra.items():
            if setting == "clean":
                x = post.inputs(encoder.encode(flux, batch_size=batch_size)[0])
            else:  # the same noise draw for both libraries: the difference is the library's
                snr = float(setting[3:])
                z = white_noise_latents(
                    encoder, flux, snr, seed + int(snr), batch_size, fastar_grid.wavelength.values, instrument
                )
                x = post.inputs(z, snr)
            r = evaluate_posterior(
                post, x, labels, n_samples, seed=seed, joint=setting == "clean", skip_unsupported=True
            )
            out["results"][setting][name] = r["metrics"]
            arrays[(setting, name)] = {
                "mean": r["arrays"]["mean"],
                "labels": labels,
                "coverage": r["arrays"]["coverage"],
                "levels": r["arrays"]["levels"],
            }
        fa, mi = out["results"][setting]["fastar"]["labels"], out["results"][setting]["miles"]["labels"]
        out["results"][setting]["systematic"] = {
            n: {
                "bias_miles_minus_fastar": mi[n]["bias"] - fa[n]["bias"],
                "r2_fastar": fa[n]["r2"],
                "r2_miles": mi[n]["r2"],
            }
            for n in post.names
            if n in mi
        }
    out["definition"] = (
        "bias: median of (posterior mean - truth); systematic = MILES bias - FASTAR bias on the same SFHs, [M/H] and "
        "noise; coverage per label: central credible intervals; a spectrum whose posterior puts no sample inside the "
        "prior box is left out of its library's metrics and counted (n_without_support)"
        + (
            f"; the noisy spectra broadened to the instrument's {instrument['instrumental_fwhm_angstrom']:g} A FWHM "
            "first (the told NPE's training copies carry it)"
            if instrument is not None
            else "; white noise at the models' resolution"
        )
    )
    return out, arrays

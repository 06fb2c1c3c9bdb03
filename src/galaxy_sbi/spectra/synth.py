"""The forward model: SFHs x SSPs -> labelled synthetic spectra cubes, one per ([M/H], [alpha/Fe]) cell.

Galaxy spectrum (seed 1.3):  F(lambda) = sum_j  dM_j / M_tot  *  SSP(age_j, [M/H], [alpha/Fe]; lambda)

- dM_j is the mass formed in time bin j = [t_j, t_j+1] of the SFH's grid: the difference of the
  cumulative mass curve (see sfh.py), so the weights sum to one exactly.
- age_j = t_obs - (t_j + t_j+1)/2 is the population age of the bin's centre (time convention in sfh.py).
- SSP(age) is linear interpolation in age between the two bracketing native SSP ages.
- Age-edge rule ("clamp"): a bin younger than the youngest native SSP (0.03 Gyr for MILES) uses the
  youngest SSP, one older than the oldest uses the oldest. The mass fraction so treated is stored per
  spectrum (`mass_fraction_below_min_age`, `mass_fraction_above_max_age`); `spectra.age_edges: error`
  refuses any such mass instead.

Fast evaluation. Linear interpolation in age is linear in the weights, so the interpolation can be folded
onto the native ages once: with A (n_bins x n_native_ages) the interpolation matrix (two non-zeros per
row), the native-age weights are W = dM @ A (n_sfh x n_native_ages, float64, rows sum to one) and all
spectra of a cell are one matrix product  F = W @ S  with S (n_native_ages x n_wavelength) the cell's
SSPs. That replaces n_bins (1000-1400) SSP evaluations per spectrum by 53. The product is computed in
float64 in blocks and stored as float32.

Normalisation ("median"): each spectrum of the 1e10 Msun galaxy (Lsun/Angstrom) is divided by its median
over wavelength (numpy's definition: the mean of the two middle values for an even number of pixels);
the factor is kept as `flux_norm`, so flux * flux_norm is the spectrum in Lsun/Angstrom.

Split: every SFH index is assigned once to train/validation/test (seeded by the master seed and the family
only), so a given SFH is in the same split in every cell: no SFH leaks from training into the test set
through another ([M/H], [alpha/Fe]) cell. With distinct SFHs per cell (sfh.nonparametric.per_cell) a cell takes
only the SFHs drawn for it (cell_sfhs) and no two spectra share one.
"""

from __future__ import annotations

import logging
import re
import time as _time
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ..io import write_netcdf
from ..seeding import derived_seed
from .sfh import TIME_CONVENTION

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
AGE_EDGE_RULE = (
    "clamp: mass formed at population ages younger than the youngest SSP is given the youngest SSP, older than "
    "the oldest the oldest SSP; the affected mass fraction is stored per spectrum"
)


# ---------------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------------


def source_has_alpha(ssp_config: dict) -> bool:
    """Whether the configured SSP source gives the library an [alpha/Fe] axis (known before any job runs)."""
    return ssp_config["source"] != "fastar" and ssp_config["alpha_models"] != "base"


def cell_name(metallicity: float, alpha: float | None = None) -> str:
    """File stem of a cell: m-0.20_a0.40, or m-0.20 when the library has no [alpha/Fe] axis."""
    name = f"m{float(metallicity) + 0.0:+.2f}"
    return name if alpha is None else f"{name}_a{float(alpha) + 0.0:.2f}"


CELL_PATTERN = r"m[+-]\d+\.\d{2}(_a\d+\.\d{2})?"


def parse_cell(name: str) -> tuple[float, float | None]:
    m = re.fullmatch(r"m([+-]\d+\.\d{2})(?:_a(\d+\.\d{2}))?", name)
    if not m:
        raise ValueError(f"not a cell name: {name!r} (expected e.g. m-0.20_a0.40 or m-0.20)")
    return float(m[1]), (float(m[2]) if m[2] is not None else None)


def spectra_cells(config: dict) -> list[str]:
    """Every ([M/H], [alpha/Fe]) cell of the configured SSP grid, as file stems."""
    grid = config["ssp"]["interpolate"]
    if source_has_alpha(config["ssp"]):
        return [cell_name(m, a) for m in grid["metallicities"] for a in grid["alphas"]]
    return [cell_name(m) for m in grid["metallicities"]]


def cell_ssps(grid: xr.Dataset, metallicity: float, alpha: float | None) -> xr.DataArray:
    """The (age, wavelength) SSPs of one cell from the interpolated SSP grid; refuses cells not on the grid."""
    flux = grid["flux"]
    sel = {"metallicity": metallicity}
    if "alpha" in flux.dims:
        if alpha is None:
            raise InputError("the SSP grid has an [alpha/Fe] axis but the cell names none")
        sel["alpha"] = alpha
    elif alpha is not None:
        raise InputError(f"cell asks for [alpha/Fe] = {alpha} but the SSP grid has no [alpha/Fe] axis")
    for dim, value in sel.items():
        values = grid[dim].values
        if not np.any(np.abs(values - value) < 1e-6):
            raise InputError(f"SSP grid has no {dim} {value} (grid: {values.tolist()}); is ssp_grid.nc up to date?")
    return flux.sel(sel, method="nearest").transpose("age", "wavelength")


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------


def bin_ages(time_gyr: np.ndarray, t_obs: float | None = None) -> np.ndarray:
    """Population ages (Gyr) of the centres of the time bins [t_j, t_j+1]: t_obs - (t_j + t_j+1)/2."""
    t = np.asarray(time_gyr, float)
    t_obs = t[-1] if t_obs is None else t_obs
    return t_obs - 0.5 * (t[1:] + t[:-1])


def mass_weights(cumulative: np.ndarray) -> np.ndarray:
    """Mass fraction formed in each time bin: the difference of the cumulative curve (rows sum to one)."""
    cum = np.asarray(cumulative, float)
    return np.diff(cum, axis=-1) / (cum[..., -1:] - cum[..., :1])


def interpolation_matrix(ages: np.ndarray, native_ages: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (n_ages x n_native): row j holds the linear-interpolation weights of age j on the native ages.

    Ages outside the native range are clamped to the nearest end (the age-edge rule). Also returns the
    boolean masks of the ages below the youngest and above the oldest native age.
    """
    ages = np.asarray(ages, float)
    native = np.asarray(native_ages, float)
    if np.any(np.diff(native) <= 0):
        raise ValueError("native SSP ages must be strictly increasing")
    below, above = ages < native[0], ages > native[-1]
    a = np.clip(ages, native[0], native[-1])
    k = np.clip(np.searchsorted(native, a, side="right") - 1, 0, len(native) - 2)
    frac = (a - native[k]) / (native[k + 1] - native[k])
    A = np.zeros((len(ages), len(native)))
    rows = np.arange(len(ages))
    A[rows, k] = 1.0 - frac
    A[rows, k + 1] += frac
    return A, below, above


def native_weights(time_gyr: np.ndarray, cumulative: np.ndarray, native_ages: np.ndarray, t_obs: float | None = None):
    """Mass weights folded onto the native SSP ages, W = dM @ A, and the clamped mass fractions.

    Returns (W (n_sfh, n_native) float64 with rows summing to one, fraction below the youngest SSP age,
    fraction above the oldest).
    """
    dM = mass_weights(np.atleast_2d(cumulative))
    A, below, above = interpolation_matrix(bin_ages(time_gyr, t_obs), native_ages)
    return dM @ A, dM[:, below].sum(axis=1), dM[:, above].sum(axis=1)


# ---------------------------------------------------------------------------------------------
# spectra
# ---------------------------------------------------------------------------------------------


def median_rows(x: np.ndarray) -> np.ndarray:
    """Row medians with numpy's definition (mean of the two middle values for even length), via partition."""
    n = x.shape[-1]
    k = n // 2
    if n % 2:
        return np.partition(x, k, axis=-1)[..., k]
    p = np.partition(x, [k - 1, k], axis=-1)
    return 0.5 * (p[..., k - 1] + p[..., k])


def forward(
    weights: np.ndarray,
    ssps: np.ndarray,
    normalise: str = "median",
    stellar_mass: float = 1.0,
    block: int = 2048,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra = weights @ ssps (float64 arithmetic, float32 result), optionally divided by their median.

    weights: (n, n_native) mass weights; ssps: (n_native, n_wavelength) per unit mass formed. Returns
    (flux float32 (n, n_wavelength), norm float64 (n,)), where norm is the median of stellar_mass * spectrum
    ("median") or 1 ("none"), so flux * norm = stellar_mass * weights @ ssps.
    """
    W = np.asarray(weights, float)
    S = np.asarray(ssps, float) * float(stellar_mass)
    n = W.shape[0]
    flux = np.empty((n, S.shape[1]), np.float32) if out is None else out
    norm = np.ones(n)
    for start in range(0, n, block):
        F = W[start : start + block] @ S
        norm[start : start + block] = normalise_rows(F, normalise)
        flux[start : start + block] = F
    return flux, norm


def normalise_rows(F: np.ndarray, normalise: str) -> np.ndarray:
    """Divide each spectrum (row, in place) by its median ("median") or leave it ("none"); returns the divisors."""
    if normalise == "none":
        return np.ones(len(F))
    if normalise != "median":
        raise ValueError(f"unknown normalisation {normalise!r}")
    med = median_rows(F)
    if np.any(med <= 0):
        raise ValueError("a spectrum has a non-positive median: cannot normalise by it")
    F /= med[:, None]
    return med


def brute_force_spectrum(
    time_gyr: np.ndarray, cumulative: np.ndarray, native_ages: np.ndarray, ssps: np.ndarray, t_obs: float | None = None
) -> np.ndarray:
    """Reference: loop over the fine time bins, interpolate the SSP in age at each bin, accumulate (float64).

    Independent of the folded fast path (no interpolation matrix): the test that the two agree is the proof.
    """
    t = np.asarray(time_gyr, float)
    t_obs = t[-1] if t_obs is None else t_obs
    cum = np.asarray(cumulative, float)
    native = np.asarray(native_ages, float)
    S = np.asarray(ssps, float)
    total = cum[-1] - cum[0]
    spectrum = np.zeros(S.shape[1])
    for j in range(len(t) - 1):
        dm = (cum[j + 1] - cum[j]) / total
        if dm == 0.0:
            continue
        age = min(max(t_obs - 0.5 * (t[j] + t[j + 1]), native[0]), native[-1])
        hi = int(np.searchsorted(native, age))
        if hi == 0:
            ssp = S[0]
        else:
            f = (age - native[hi - 1]) / (native[hi] - native[hi - 1])
            ssp = (1.0 - f) * S[hi - 1] + f * S[hi]
        spectrum += dm * ssp
    return spectrum


def assign_split(n: int, fractions: dict, seed: int, family: str) -> np.ndarray:
    """'train' / 'validation' / 'test' per SFH index: a seeded permutation cut at the configured fractions.

    Counts are round(fraction * n) for test and validation; train takes the rest. Depends only on
    (seed, family, n, fractions), so every cell of a family gets the same assignment.
    """
    rng = np.random.default_rng(derived_seed(seed, "split", family))
    order = rng.permutation(n)
    n_test = int(round(fractions["test"] * n))
    n_val = int(round(fractions["validation"] * n))
    split = np.full(n, "train", dtype="<U10")
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "validation"
    return split


def cell_sfhs(sfh: xr.Dataset, cell: str, fractions: dict, seed: int) -> tuple[xr.Dataset, np.ndarray]:
    """The SFHs (loaded) a cell's spectra are made of, and their splits: those whose ``cell`` coordinate names it
    (sfh.nonparametric.per_cell: distinct) or all of them. The split is drawn over the whole SFH file, so an SFH's
    split does not depend on which cells are built."""
    split = assign_split(sfh.sizes["sfh"], fractions, seed, sfh.attrs["family"])
    if "cell" not in sfh.coords:
        return sfh.load(), split
    mine = sfh["cell"].values.astype(str) == cell
    if not mine.any():
        raise InputError(
            f"the SFH file has no SFHs for cell {cell!r} (it has {sorted(set(sfh['cell'].values.astype(str)))}): "
            "it was drawn for other [M/H] cells; rerun the sfh rule"
        )
    return sfh.isel(sfh=np.flatnonzero(mine)).load(), split[mine]


def continuous_chemistry(grid: xr.Dataset, metallicity: float, alpha: float | None, n: int, seed: int, family: str):
    """Per-spectrum [M/H] (and [alpha/Fe]) uniform within the cell of the grid (sfh.cell_edges), seeded per cell."""
    from .sfh import cell_edges

    rng = np.random.default_rng(derived_seed(seed, "metallicity_sampling", family, cell_name(metallicity, alpha)))
    out = []
    for dim, value in (("metallicity", metallicity), ("alpha", alpha)):
        if value is None:
            out.append(None)
            continue
        g, low, high = cell_edges(grid[dim].values)
        i = int(np.argmin(np.abs(g - value)))
        out.append(rng.uniform(low[i], high[i], n))
    return out


def build_cell(
    sfh: xr.Dataset, grid: xr.Dataset, cell: str, spectra_cfg: dict, seed: int, library: xr.Dataset | None = None
) -> xr.Dataset:
    """The labelled spectra cube of one family x ([M/H], [alpha/Fe]) cell. With ``metallicity_sampling:
    continuous`` every spectrum's [M/H] (and [alpha/Fe]) is drawn within the cell and synthesised from the native
    ``library`` (linear between its models, as ``grid`` was made)."""
    metallicity, alpha = parse_cell(cell)
    sfh, split = cell_sfhs(sfh, cell, spectra_cfg["split"], seed)
    ssps = cell_ssps(grid, metallicity, alpha)
    native_ages = ssps["age"].values
    time = sfh["time"].values
    t_obs = float(sfh.attrs["t_obs_gyr"])
    W, below, above = native_weights(time, sfh["cumulative_mass_fraction"].values, native_ages, t_obs)
    if spectra_cfg["age_edges"] == "error" and (below.max() > 0 or above.max() > 0):
        raise InputError(
            f"SFHs put mass at ages outside the SSP grid [{native_ages[0]}, {native_ages[-1]}] Gyr (max fraction "
            f"{max(below.max(), above.max()):.3g}); set spectra.age_edges: clamp to use the edge SSPs"
        )
    start = _time.perf_counter()
    family = sfh.attrs["family"]
    n = sfh.sizes["sfh"]
    mass = float(sfh.attrs["stellar_mass_msun"])
    continuous = spectra_cfg.get("metallicity_sampling", "cells") == "continuous"
    if continuous:
        from .off_grid import continuous_spectra

        if library is None:
            raise ValueError("metallicity_sampling: continuous needs the native SSP library")
        mets, alphas = continuous_chemistry(grid, metallicity, alpha, n, seed, family)
        flux, norm = continuous_spectra(W, library, mets, alphas, spectra_cfg["normalisation"], mass)
    else:
        mets = np.full(n, metallicity)
        alphas = None if alpha is None else np.full(n, alpha)
        flux, norm = forward(W, ssps.values, spectra_cfg["normalisation"], mass)
    log.info("forward model: %d spectra in %.2f s", len(flux), _time.perf_counter() - start)

    names = list(sfh["label_name"].values) + ["metallicity"] + (["alpha"] if alpha is not None else [])
    labels = np.column_stack([sfh["percentiles"].values, mets] + ([alphas] if alpha is not None else []))
    wave = ssps["wavelength"]
    flux_attrs = (
        {"units": "1", "long_name": "spectrum divided by its median (flux_norm)"}
        if spectra_cfg["normalisation"] == "median"
        else {"units": "Lsun / Angstrom", "long_name": "spectrum of the galaxy"}
    )
    ds = xr.Dataset(
        {
            "flux": (("sample", "wavelength"), flux, flux_attrs),
            "flux_norm": (
                "sample",
                norm,
                {
                    "units": "Lsun / Angstrom",
                    "long_name": f"median over wavelength of the {sfh.attrs['stellar_mass_msun']:.3g} Msun galaxy's spectrum "
                    "(flux * flux_norm = L_lambda)"
                    if spectra_cfg["normalisation"] == "median"
                    else "1 (not normalised)",
                },
            ),
            "labels": (
                ("sample", "parameter"),
                labels,
                {
                    "long_name": "inference targets: t10...t90 (cosmic time of formation, Gyr), [M/H] and [alpha/Fe] (dex)"
                },
            ),
            "ssp_weights": (
                ("sample", "age"),
                W,
                {
                    "units": "1",
                    "long_name": "mass weights folded onto the native SSP ages (flux * flux_norm = M_tot * ssp_weights @ SSP)",
                },
            ),
            "mass_fraction_below_min_age": (
                "sample",
                below,
                {"units": "1", "long_name": "mass fraction younger than the youngest SSP (given the youngest SSP)"},
            ),
            "mass_fraction_above_max_age": (
                "sample",
                above,
                {"units": "1", "long_name": "mass fraction older than the oldest SSP (given the oldest SSP)"},
            ),
        },
        coords={
            "sample": ("sample", sfh["sfh"].values, {"long_name": f"SFH index in results/sfh/{family}.nc"}),
            "wavelength": ("wavelength", wave.values, dict(wave.attrs)),
            "age": ("age", native_ages, {"units": "Gyr", "long_name": "native SSP age"}),
            "parameter": ("parameter", np.array(names, dtype=str)),
            "split": (
                "sample",
                split,
                {
                    "long_name": "train / validation / test, assigned once per SFH index (the same wherever the SFH is used)"
                },
            ),
            "metallicity": (
                (),
                metallicity,
                {"units": "dex", "long_name": "[M/H] of the cell" + (" (its centre)" if continuous else "")},
            ),
        },
    )
    if alpha is not None:
        ds = ds.assign_coords(alpha=((), alpha, {"units": "dex", "long_name": "[alpha/Fe]"}))
    for extra in ("t0", "tau"):
        if extra in sfh:
            ds[extra] = ("sample", sfh[extra].values, dict(sfh[extra].attrs))
    ds.attrs.update(
        {
            "family": family,
            "cell": cell,
            "time_convention": TIME_CONVENTION,
            "t_obs_gyr": t_obs,
            "redshift": 0.0,
            "stellar_mass_msun": float(sfh.attrs["stellar_mass_msun"]),
            "forward_model": "flux_norm * flux = M_tot * sum_j dM_j/M_tot SSP(t_obs - t_mid_j); SSPs linear in age",
            "age_edge_rule": AGE_EDGE_RULE,
            "normalisation": spectra_cfg["normalisation"],
            "split_fractions": str(spectra_cfg["split"]),
            "has_alpha_axis": int(alpha is not None),
            "metallicity_sampling": "continuous: [M/H] (and [alpha/Fe]) of every spectrum uniform within the cell, "
            "linear between the native SSP models"
            if continuous
            else "cells: every spectrum at the cell's values",
            "ssp_source": grid.attrs.get("source", "?"),
            "ssp_clamped": grid.attrs.get("clamped", "none"),
        }
    )
    return ds


def write_cube(ds: xr.Dataset, path: str | Path, chunk_samples: int, complevel: int) -> Path:
    """Write a spectra cube: flux chunked (chunk_samples x all wavelengths), zlib at `complevel` (0: none)."""
    return write_netcdf(ds, path, chunk_sizes={"sample": chunk_samples}, complevel=complevel)

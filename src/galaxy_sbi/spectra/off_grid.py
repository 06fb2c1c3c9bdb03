"""Off-grid test sets: truths drawn continuously from each family's prior, never on the training lattice.

The training cubes put [M/H] (and [alpha/Fe]) on the ``ssp.interpolate`` cells and the parametric (t0, tau) on the
seed's lattice, so a test split of the same cubes only asks the posterior about lattice points. Here:

- parametric: (t0, log10 tau) uniform over the lattice's ranges, cumulative mass in closed form on the same time
  grid (:func:`galaxy_sbi.spectra.sfh.linexp_sfhs`);
- non-parametric: fresh dense_basis draws from the same prior with their own random stream (none is a training SFH);
- both: [M/H] (and [alpha/Fe]) uniform over the interpolated grid's range, the spectrum linear in them between the
  *native* library's models (the cube cells are that same interpolation, so a draw on a cell reproduces the cube).

Every spectrum is its own SFH, so coverage scatters binomially (no SFH-correlated clusters).
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ..errors import InputError
from ..seeding import derived_seed
from .sfh import TIME_CONVENTION, linear_grid, linexp_sfhs, make_nonparametric
from .synth import AGE_EDGE_RULE, native_weights, normalise_rows

log = logging.getLogger(__name__)


def _bracket(values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and fraction towards the next node of every value (linear interpolation)."""
    k = np.clip(np.searchsorted(nodes, values, side="right") - 1, 0, len(nodes) - 2)
    return k, (values - nodes[k]) / (nodes[k + 1] - nodes[k])


def continuous_spectra(
    weights: np.ndarray,
    library: xr.Dataset,
    metallicity: np.ndarray,
    alpha: np.ndarray | None = None,
    normalisation: str = "median",
    stellar_mass: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(flux float32, norm) of spectra with mass weights on the library's ages at any [M/H] (and [alpha/Fe]),
    linear between the native models: sum over the bracketing corners of w_corner * (weights @ SSP_corner)."""
    flux = library["flux"]
    dims = ["metallicity"] + (["alpha"] if "alpha" in flux.dims else [])
    if "alpha" in flux.dims and alpha is None:
        raise InputError("the SSP library has an [alpha/Fe] axis: give an [alpha/Fe] per spectrum")
    ssp = flux.transpose(*dims, "age", "wavelength").values.astype(float) * float(stellar_mass)
    values = {"metallicity": np.asarray(metallicity, float), "alpha": None if alpha is None else np.asarray(alpha)}
    axes = []
    for d in dims:
        nodes = library[d].values.astype(float)
        v = values[d]
        if v.min() < nodes[0] - 1e-9 or v.max() > nodes[-1] + 1e-9:
            raise InputError(f"{d} {v.min():.3f}...{v.max():.3f} outside the SSP library's [{nodes[0]}, {nodes[-1]}]")
        k, f = _bracket(np.clip(v, nodes[0], nodes[-1]), nodes)
        axes.append(((k, 1.0 - f), (k + 1, f)))
    W = np.asarray(weights, float)
    out = np.zeros((len(W), ssp.shape[-1]))
    for corner in np.ndindex(*(2,) * len(dims)):  # 2 corners in [M/H], 4 with [alpha/Fe]
        index = np.column_stack([axes[a][c][0] for a, c in enumerate(corner)])
        w = np.prod([axes[a][c][1] for a, c in enumerate(corner)], axis=0)
        for node in np.unique(index, axis=0):
            rows = np.flatnonzero(np.all(index == node, axis=1) & (w > 0))
            if rows.size:
                out[rows] += w[rows, None] * (W[rows] @ ssp[tuple(node)])
    norm = normalise_rows(out, normalisation)
    return out.astype(np.float32), norm


def draw_sfhs(family: str, sfh_cfg: dict, n: int, seed: int) -> xr.Dataset:
    """n SFHs of the family drawn continuously from its prior (own random stream), as the SFH product."""
    percentiles = sfh_cfg["percentiles"]
    if family == "parametric":
        cfg = sfh_cfg["parametric"]
        rng = np.random.default_rng(derived_seed(seed, "off_grid", "parametric"))
        t0_lo, t0_hi = cfg["t0_gyr"]["start"], linear_grid(**cfg["t0_gyr"])[-1]
        lt_lo, lt_hi = cfg["log10_tau_gyr"]["start"], linear_grid(**cfg["log10_tau_gyr"])[-1]
        t0 = rng.uniform(t0_lo, t0_hi, n)
        tau = 10.0 ** rng.uniform(lt_lo, lt_hi, n)
        ds = linexp_sfhs(linear_grid(**cfg["time_gyr"]), t0, tau, sfh_cfg["stellar_mass"], percentiles)
        ds.attrs["prior"] = f"t0 ~ U({t0_lo:g}, {t0_hi:g}) Gyr, log10 tau ~ U({lt_lo:g}, {lt_hi:g})"
        return ds
    if family == "nonparametric":
        cfg = {**sfh_cfg["nonparametric"], "n_per_cell": int(n)}
        own_seed = int(derived_seed(seed, "off_grid", "nonparametric").generate_state(1)[0])  # not the training draws
        ds = make_nonparametric(cfg, sfh_cfg["stellar_mass"], own_seed, percentiles, progress=False)
        ds.attrs["prior"] = "the training prior (sfh.nonparametric), fresh draws"
        return ds
    raise ValueError(f"unknown SFH family {family!r}")


def off_grid_set(
    family: str,
    sfh_cfg: dict,
    library: xr.Dataset,
    interpolate_cfg: dict,
    spectra_cfg: dict,
    n: int,
    seed: int,
) -> xr.Dataset:
    """The family's off-grid test set: n spectra, each its own SFH and its own continuous [M/H] (and [alpha/Fe])
    drawn uniformly over the interpolated grid's range; labels as in the cubes."""
    sfh = draw_sfhs(family, sfh_cfg, n, seed)
    rng = np.random.default_rng(derived_seed(seed, "off_grid", family, "chemistry"))
    mets = np.asarray(interpolate_cfg["metallicities"], float)
    metallicity = rng.uniform(mets.min(), mets.max(), n)
    alpha = None
    if "alpha" in library["flux"].dims:
        alphas = np.asarray(interpolate_cfg["alphas"], float)
        alpha = rng.uniform(alphas.min(), alphas.max(), n)
    ages = library["age"].values
    t_obs = float(sfh.attrs["t_obs_gyr"])
    W, below, above = native_weights(sfh["time"].values, sfh["cumulative_mass_fraction"].values, ages, t_obs)
    if spectra_cfg["age_edges"] == "error" and (below.max() > 0 or above.max() > 0):
        raise InputError(
            f"off-grid SFHs put mass outside the SSP ages [{ages[0]}, {ages[-1]}] Gyr; set spectra.age_edges: clamp"
        )
    flux, norm = continuous_spectra(
        W, library, metallicity, alpha, spectra_cfg["normalisation"], float(sfh.attrs["stellar_mass_msun"])
    )
    names = list(sfh["label_name"].values) + ["metallicity"] + (["alpha"] if alpha is not None else [])
    labels = np.column_stack([sfh["percentiles"].values, metallicity] + ([alpha] if alpha is not None else []))
    wave = library["wavelength"]
    ds = xr.Dataset(
        {
            "flux": (("sample", "wavelength"), flux, {"units": "1", "long_name": "spectrum / flux_norm"}),
            "flux_norm": ("sample", norm, {"units": "Lsun / Angstrom"}),
            "labels": (("sample", "parameter"), labels, {"long_name": "t10...t90 (Gyr, cosmic time), [M/H], ..."}),
            "cumulative_mass_fraction": (("sample", "time"), sfh["cumulative_mass_fraction"].values),
            "mass_fraction_below_min_age": ("sample", below),
            "mass_fraction_above_max_age": ("sample", above),
        },
        coords={
            "sample": np.arange(n),
            "time": ("time", sfh["time"].values, {"units": "Gyr"}),
            "wavelength": ("wavelength", wave.values, dict(wave.attrs)),
            "parameter": ("parameter", np.array(names, dtype=str)),
        },
    )
    for extra in ("t0", "tau"):
        if extra in sfh:
            ds[extra] = ("sample", sfh[extra].values, dict(sfh[extra].attrs))
    ds.attrs.update(
        {
            "family": family,
            "definition": "off-grid test set: every spectrum its own SFH drawn from the prior and its own continuous "
            "[M/H] (and [alpha/Fe]), linear between the native SSP models",
            "sfh_prior": sfh.attrs["prior"],
            "metallicity_prior": f"U({mets.min():g}, {mets.max():g})",
            "time_convention": TIME_CONVENTION,
            "t_obs_gyr": t_obs,
            "normalisation": spectra_cfg["normalisation"],
            "age_edge_rule": AGE_EDGE_RULE,
            "ssp_source": library.attrs.get("source", "?"),
        }
    )
    log.info("%s: %d off-grid test spectra (its own SFH and [M/H] each)", family, n)
    return ds

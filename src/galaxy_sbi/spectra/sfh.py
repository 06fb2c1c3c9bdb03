"""Star-formation histories (SFHs): the parametric and the non-parametric family, and their percentiles.

Time convention (identical in every SFH and spectra product, stored as the attribute ``time_convention``):

    ``time`` is cosmic time t in Gyr, counted from the origin of the SFH's own time grid (t = 0 is the
    Big Bang for dense_basis; the grid start for the parametric family). The galaxy is observed at the
    end of the grid, ``t_obs_gyr`` (z = 0): 14.0 Gyr for the parametric grid, 13.47 Gyr for dense_basis.
    The labels t10...t90 are *cosmic times of formation*: the time at which 10...90 % of the formed mass
    had formed. Stars formed at cosmic time t have the population age t_obs - t at observation; that
    age is what the SSP lookup in the forward model uses.

Representation: every SFH is stored as its SFR on the nodes of a time grid and, canonically, as the
cumulative fraction of the formed mass on the same nodes (``cumulative_mass_fraction``, 0 at the first
node, 1 at t_obs). Both the labels and the forward model's mass weights derive from that one curve:

- percentiles: linear interpolation of the cumulative curve between nodes (never quantised to a node);
- mass formed in bin [t_j, t_j+1]: the difference of the cumulative curve, so the weights sum to one.

The parametric family (seed 1.2) SFR(t) = Theta(t - t0) ((t - t0)/tau) exp(-(t - t0)/tau) has the closed
form cumulative M(t) = tau [1 - (1 + x) e^-x], x = (t - t0)/tau, which is used exactly at the nodes. The
non-parametric family (dense_basis GP-SFHs) returns an SFR on 1000 nodes; its cumulative curve is the
trapezoid integral of that SFR (the SFR is taken as piecewise linear between nodes).

The stellar mass is the mass *formed* (no return fraction is modelled): M_tot = 1e10 Msun by default.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..inference.dequantise import grid_cells
from ..seeding import derived_seed

log = logging.getLogger(__name__)

FAMILIES = ("parametric", "nonparametric")
DEFAULT_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
TIME_CONVENTION = (
    "time: cosmic time t in Gyr since the origin of the SFH time grid (t = 0 is the Big Bang for dense_basis, "
    "the grid start for the parametric family); the galaxy is observed at t_obs_gyr (z = 0). Percentiles "
    "t10...t90 are cosmic times at which 10...90 % of the formed mass had formed. Stars formed at t have the "
    "population age t_obs_gyr - t, which is what the SSP lookup uses."
)
YEARS_PER_GYR = 1e9


# ---------------------------------------------------------------------------------------------
# random streams and grids
# ---------------------------------------------------------------------------------------------


def linear_grid(start: float, stop: float, step: float) -> np.ndarray:
    """start, start+step, ..., stop (inclusive when stop lies on the grid), without float drift."""
    n = int(np.floor((stop - start) / step + 1e-6)) + 1
    return np.round(start + step * np.arange(n), 10)


def percentile_names(percentiles: Sequence[int]) -> list[str]:
    return [f"t{int(p)}" for p in percentiles]


# ---------------------------------------------------------------------------------------------
# cumulative mass and percentiles
# ---------------------------------------------------------------------------------------------


def cumulative_from_sfr(time_gyr: np.ndarray, sfr: np.ndarray) -> np.ndarray:
    """Cumulative formed-mass fraction on the nodes: trapezoid integral of the SFR, normalised to 1 at the end.

    sfr has shape (..., n_time); negative values are an error (clip before).
    """
    sfr = np.asarray(sfr, float)
    if np.any(sfr < 0):
        raise ValueError("SFR must be non-negative")
    dt = np.diff(np.asarray(time_gyr, float))
    bins = 0.5 * (sfr[..., 1:] + sfr[..., :-1]) * dt
    cum = np.concatenate([np.zeros(sfr.shape[:-1] + (1,)), np.cumsum(bins, axis=-1)], axis=-1)
    total = cum[..., -1:]
    if np.any(total <= 0):
        raise ValueError("an SFR with no mass formed cannot be normalised")
    return cum / total


def percentile_times(
    time_gyr: np.ndarray, cumulative: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> np.ndarray:
    """Times at which the cumulative mass fraction reaches each percentile, by linear interpolation.

    cumulative: (n_sfh, n_time) or (n_time,), non-decreasing from 0 to 1. For each q the bracketing nodes
    are the last node below q and the first node at or above q; inside flat stretches (no star formation)
    the time of the first node reaching q is returned. Result: (n_sfh, n_percentiles) in the units of time.
    """
    t = np.asarray(time_gyr, float)
    cum = np.atleast_2d(np.asarray(cumulative, float))
    n, m = cum.shape
    out = np.empty((n, len(percentiles)))
    rows = np.arange(n)
    for k, p in enumerate(percentiles):
        q = p / 100.0
        hi = np.clip((cum < q).sum(axis=1), 1, m - 1)  # first node with cum >= q (cum is monotone)
        lo = hi - 1
        c_lo, c_hi = cum[rows, lo], cum[rows, hi]
        span = c_hi - c_lo
        frac = np.where(span > 0, (q - c_lo) / np.where(span > 0, span, 1.0), 1.0)
        out[:, k] = t[lo] + np.clip(frac, 0.0, 1.0) * (t[hi] - t[lo])
    return out if np.ndim(cumulative) > 1 else out[0]


# ---------------------------------------------------------------------------------------------
# the parametric family
# ---------------------------------------------------------------------------------------------


def linexp_cumulative(time_gyr: np.ndarray, t0: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Unnormalised cumulative mass tau [1 - (1 + x) e^-x], x = max(t - t0, 0)/tau; shape (n_sfh, n_time)."""
    x = (
        np.maximum(np.asarray(time_gyr, float)[None, :] - np.asarray(t0, float)[:, None], 0.0)
        / np.asarray(tau, float)[:, None]
    )
    # 1 - (1 + x) e^-x loses precision for small x: use -expm1(-x) - x e^-x
    return np.asarray(tau, float)[:, None] * (-np.expm1(-x) - x * np.exp(-x))


def linexp_sfr_shape(time_gyr: np.ndarray, t0: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Theta(t - t0) ((t - t0)/tau) exp(-(t - t0)/tau), unnormalised; shape (n_sfh, n_time)."""
    x = (
        np.maximum(np.asarray(time_gyr, float)[None, :] - np.asarray(t0, float)[:, None], 0.0)
        / np.asarray(tau, float)[:, None]
    )
    return x * np.exp(-x)


def _gamma2_cdf(u: np.ndarray) -> np.ndarray:
    """1 - (1 + u) e^-u for u > 0, else 0: the linear-exponential's cumulative shape."""
    u = np.maximum(u, 0.0)
    return -np.expm1(-u) - u * np.exp(-u)


def linexp_percentiles(
    t0, tau, t_start: float, t_obs: float, percentiles: Sequence[float] = DEFAULT_PERCENTILES, n_iter: int = 45
) -> np.ndarray:
    """Exact percentile times (n, n_p) of linear-exponential SFHs, the mass formed between t_start and t_obs.

    Bisection on the closed-form cumulative in u = (t - t0)/tau (45 halvings: < 1e-11 Gyr). The SFH files'
    labels interpolate the same cumulative linearly between 0.01 Gyr nodes (within 2e-4 Gyr of these).
    NaN where no mass forms before t_obs (t0 >= t_obs)."""
    t0, tau = np.broadcast_arrays(np.asarray(t0, float).ravel(), np.asarray(tau, float).ravel())
    q = np.asarray(percentiles, float)[None, :] / 100.0
    u_lo = (np.maximum(t_start, t0) - t0)[:, None] / tau[:, None]
    u_hi = ((t_obs - t0) / tau)[:, None]
    g_lo = _gamma2_cdf(u_lo)
    target = g_lo + q * (_gamma2_cdf(u_hi) - g_lo)
    lo, hi = np.broadcast_to(u_lo, target.shape).copy(), np.broadcast_to(u_hi, target.shape).copy()
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = _gamma2_cdf(mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    out = t0[:, None] + tau[:, None] * 0.5 * (lo + hi)
    out[u_hi[:, 0] <= u_lo[:, 0]] = np.nan
    return out


def linexp_parameters(
    percentile_times_gyr,
    t_start: float,
    t_obs: float,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    n_iter: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """(t0, tau) of the linear-exponential SFHs whose percentiles best match ``percentile_times_gyr`` (n, n_p).

    Least squares over all percentiles, Gauss-Newton in (t0, log tau) from the untruncated solution (where the
    percentiles are t0 + tau u_p with fixed u_p). Exact percentiles come back to ~1e-9 Gyr; labels interpolated
    on a 0.01 Gyr grid to ~1e-3 Gyr."""
    t = np.atleast_2d(np.asarray(percentile_times_gyr, float))
    u_p = linexp_percentiles(0.0, 1.0, 0.0, 1e3, percentiles)[0]  # untruncated: t_p = t0 + tau u_p
    tau = np.maximum((t[:, -1] - t[:, 0]) / (u_p[-1] - u_p[0]), 1e-3)
    p = np.column_stack([np.minimum(t[:, 0] - u_p[0] * tau, t[:, 0] - 1e-6), np.log(tau)])

    def resid(par):
        return linexp_percentiles(par[:, 0], np.exp(par[:, 1]), t_start, t_obs, percentiles) - t

    h = 1e-6
    for _ in range(n_iter):
        r = resid(p)
        jac = np.stack([(resid(p + h * e) - resid(p - h * e)) / (2 * h) for e in np.eye(2)], -1)  # (n, n_p, 2)
        jtj = np.einsum("npi,npj->nij", jac, jac) + 1e-12 * np.eye(2)
        step = np.linalg.solve(jtj, np.einsum("npi,np->ni", jac, r)[..., None])[..., 0]
        # keep t0 below the first percentile (where the model has mass) and tau positive
        p_new = p - step
        p_new[:, 0] = np.minimum(p_new[:, 0], t[:, 0] - 1e-6)
        ok = np.isfinite(p_new).all(1)
        p[ok] = p_new[ok]
    return p[:, 0], np.exp(p[:, 1])


def parametric_grid(cfg: dict, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, t0, tau) of the configured linear-exponential grid; every `thin`-th t0 and log tau are kept.

    The t0 x tau product is ordered t0-major: SFH index i = i_t0 * n_tau + i_tau. With ``sampling: continuous``
    each SFH's t0 and log10 tau are drawn uniformly within its lattice cell (half-way to the neighbouring nodes, the
    lattice's ends the range's; seeded by ``seed``), a stratified sample of the continuous prior.
    """
    time = linear_grid(**cfg["time_gyr"])
    t0 = linear_grid(**cfg["t0_gyr"])[:: cfg["thin"]]
    log_tau = linear_grid(**cfg["log10_tau_gyr"])[:: cfg["thin"]]
    t0_all, log_tau_all = (a.ravel() for a in np.meshgrid(t0, log_tau, indexing="ij"))
    if cfg.get("sampling", "lattice") == "continuous":
        if seed is None:
            raise ValueError("sfh.parametric.sampling: continuous needs a seed")
        rng = np.random.default_rng(derived_seed(seed, "sfh", "parametric"))
        t0_all = jitter_within_cells(t0_all, t0, rng)
        log_tau_all = jitter_within_cells(log_tau_all, log_tau, rng)
    return time, t0_all, 10.0**log_tau_all


def cell_edges(nodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted nodes and their cells' (low, high): half-way to the neighbours, the end cells stopping at the end
    nodes (so a draw never leaves the nodes' range)."""
    g, low, high = grid_cells(nodes)  # the dequantisation's cells, whose end cells reach out as far as in
    low[0], high[-1] = g[0], g[-1]
    return g, low, high


def jitter_within_cells(values, nodes, rng: np.random.Generator) -> np.ndarray:
    """Each value (a node) replaced by a uniform draw within its node's cell (:func:`cell_edges`)."""
    g, low, high = cell_edges(nodes)
    idx = np.argmin(np.abs(np.asarray(values, float)[..., None] - g), axis=-1)
    return low[idx] + (high[idx] - low[idx]) * rng.uniform(size=idx.shape)


def linexp_sfhs(
    time: np.ndarray, t0: np.ndarray, tau: np.ndarray, stellar_mass: float, percentiles: Sequence[int]
) -> xr.Dataset:
    """Linear-exponential SFHs at any (t0, tau) on the time grid: exact cumulative masses, interpolated percentiles."""
    t0, tau = np.asarray(t0, float), np.asarray(tau, float)
    if np.any(t0 >= time[-1]):
        raise ValueError("every t0 must lie before the time of observation (the end of the time grid)")
    cum = linexp_cumulative(time, t0, tau)
    total = cum[:, -1].copy()
    cum /= total[:, None]
    cum[:, -1] = 1.0
    # SFR in Msun/yr such that the integral over the grid is the stellar mass: M_tot / (tau * total_shape)
    amplitude = stellar_mass / (total * YEARS_PER_GYR)
    sfr = linexp_sfr_shape(time, t0, tau) * amplitude[:, None]
    ds = sfh_dataset(time, sfr, cum, percentiles, family="parametric", stellar_mass=stellar_mass)
    ds["t0"] = ("sfh", t0, {"units": "Gyr", "long_name": "onset of star formation t0 (cosmic time)"})
    ds["tau"] = ("sfh", tau, {"units": "Gyr", "long_name": "e-folding time tau"})
    ds.attrs["sfr_law"] = "SFR(t) = Theta(t - t0) ((t - t0)/tau) exp(-(t - t0)/tau), normalised to stellar_mass_msun"
    ds.attrs["cumulative_mass"] = "exact closed form tau [1 - (1 + x) e^-x], x = (t - t0)/tau, at the nodes"
    return ds


def make_parametric(
    cfg: dict, stellar_mass: float, percentiles: Sequence[int] = DEFAULT_PERCENTILES, seed: int | None = None
) -> xr.Dataset:
    """The linear-exponential SFH grid (or its continuous, cell-stratified draw) with exact cumulative masses and
    interpolated percentiles."""
    time, t0, tau = parametric_grid(cfg, seed)
    ds = linexp_sfhs(time, t0, tau, stellar_mass, percentiles)
    ds.attrs["sampling"] = (
        "continuous: t0 and log10 tau uniform within their lattice cells"
        if cfg.get("sampling", "lattice") == "continuous"
        else "lattice"
    )
    ds.attrs["grid"] = (
        f"t0 {cfg['t0_gyr']} Gyr, log10 tau {cfg['log10_tau_gyr']}, every {cfg['thin']}-th value kept; "
        "SFH index = i_t0 * n_tau + i_tau"
    )
    return ds


# ---------------------------------------------------------------------------------------------
# the non-parametric family (dense_basis GP-SFHs)
# ---------------------------------------------------------------------------------------------


def _import_dense_basis():
    """dense_basis prints 'Failed to load FSPS' on import: harmless (only the GP-SFH module is used)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import dense_basis

    return dense_basis


def draw_dense_basis_tuples(n: int, cfg: dict, log_mass: float, seed: np.random.SeedSequence) -> np.ndarray:
    """(n, 3 + n_tx) SFH tuples (log M*, log SFR, n_tx, t_x...) from dense_basis's own prior samplers.

    `Priors().sample_sfh_tuple()` crashes in dense_basis 0.1.9, so the mass, SFR and t_x priors are sampled
    separately: log M* is fixed (the seed fixes M* = 1e10), log sSFR ~ U(ssfr_min, ssfr_max), t_x ~ cumulative
    Dirichlet(tx_alpha). dense_basis draws from numpy's global generator: it is seeded here and restored.
    """
    db = _import_dense_basis()
    priors = db.Priors()
    priors.Nparam = int(cfg["n_tx"])
    priors.tx_alpha = float(cfg["tx_alpha"])
    priors.sfr_prior_type = "sSFRflat"
    priors.ssfr_min, priors.ssfr_max = map(float, cfg["log_ssfr_range"])
    state = np.random.get_state()
    try:
        np.random.seed(seed.generate_state(1)[0])
        priors.massval = np.full(n, float(log_mass))
        log_sfr = np.asarray(priors.sample_sfr_prior(zval=0.0, size=n), float).reshape(n)
        tx = np.asarray(priors.sample_tx_prior(size=n), float).reshape(n, priors.Nparam)
    finally:
        np.random.set_state(state)
    return np.column_stack([np.full(n, float(log_mass)), log_sfr, np.full(n, float(priors.Nparam)), tx])


def _dense_basis_sfhs(tuples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SFRs (n, 1000) in Msun/yr and the shared time axis (Gyr) of dense_basis.tuple_to_sfh at z = 0."""
    db = _import_dense_basis()
    sfrs = []
    time = None
    for tup in tuples:
        sfr, time = db.tuple_to_sfh(tup, zval=0.0, interpolator="gp_george")
        sfrs.append(sfr)
    return np.asarray(sfrs, float), np.asarray(time, float)


def make_nonparametric(
    cfg: dict,
    stellar_mass: float,
    seed: int,
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    processes: int = 1,
    progress: bool = True,
    cells: Sequence[str] | None = None,
) -> xr.Dataset:
    """dense_basis GP-SFHs on dense_basis's own time grid (0...13.47 Gyr at z = 0), drawn once (seeded).

    ``per_cell: distinct`` (needs ``cells``, the spectra stage's cell names): n_per_cell SFHs for each cell, a
    ``cell`` coordinate saying whose, so no two spectra share an SFH; ``shared``: n_per_cell SFHs combined with every
    ([M/H], [alpha/Fe]) cell. Percentiles are recomputed from the returned SFR (the tuple's t_x can be badly off when
    the prior's SFR and t_x conflict); the SFR is rescaled so that it integrates to `stellar_mass`.
    """
    per_cell = int(cfg["n_per_cell"])
    distinct = cfg.get("per_cell", "shared") == "distinct"
    if distinct and not cells:
        raise ValueError("sfh.nonparametric.per_cell: distinct needs the spectra cells' names")
    n = per_cell * (len(cells) if distinct else 1)
    tuples = draw_dense_basis_tuples(n, cfg, np.log10(stellar_mass), derived_seed(seed, "sfh", "nonparametric"))
    blocks = np.array_split(tuples, max(1, min(n, 8 * processes)))
    if processes > 1 and n > 1:
        import multiprocessing as mp

        _import_dense_basis()  # import once in the parent; forked workers inherit it
        with mp.get_context("fork").Pool(processes) as pool:
            results = list(_progress(pool.imap(_dense_basis_sfhs, blocks), len(blocks), progress))
    else:
        results = [_dense_basis_sfhs(b) for b in _progress(blocks, len(blocks), progress)]
    sfr = np.concatenate([r[0] for r in results])
    time = results[0][1]
    sfr = np.where(np.isfinite(sfr), np.maximum(sfr, 0.0), 0.0)
    bad = np.flatnonzero(sfr.sum(axis=1) <= 0)
    if bad.size:
        # a draw with no mass formed cannot be normalised: replace it by a constant SFR and record it
        log.warning("%d dense_basis draws formed no mass; replaced by constant SFHs", bad.size)
        sfr[bad] = 1.0
    cum = cumulative_from_sfr(time, sfr)
    mass = np.sum(0.5 * (sfr[:, 1:] + sfr[:, :-1]) * np.diff(time), axis=1) * YEARS_PER_GYR
    sfr *= (stellar_mass / mass)[:, None]
    ds = sfh_dataset(time, sfr, cum, percentiles, family="nonparametric", stellar_mass=stellar_mass)
    ds = ds.assign_coords(tx_index=np.arange(tuples.shape[1] - 3))
    if distinct:
        ds = ds.assign_coords(
            cell=("sfh", np.repeat(np.asarray(cells, dtype=str), per_cell), {"long_name": "the spectra cell it is for"})
        )
    ds["db_log_sfr"] = (
        "sfh",
        tuples[:, 1],
        {"units": "log10(Msun/yr)", "long_name": "dense_basis tuple: SFR at observation"},
    )
    ds["db_tx"] = (
        ("sfh", "tx_index"),
        tuples[:, 3:],
        {
            "units": "1",
            "long_name": "dense_basis tuple: t_x (fraction of t_obs at which (i+1)/(n_tx+1) of the mass formed)",
            "note": "the prior's values; the labels are recomputed from the SFR and can differ",
        },
    )
    ds["replaced_by_constant"] = (
        "sfh",
        np.isin(np.arange(n), bad).astype(np.int8),
        {"long_name": "1 where the draw formed no mass"},
    )
    ds.attrs["generator"] = (
        "dense_basis.tuple_to_sfh(tuple, zval=0, interpolator='gp_george'); tuples from Priors.sample_sfr_prior "
        f"(sSFRflat, log sSFR in {list(cfg['log_ssfr_range'])}) and sample_tx_prior (Nparam={cfg['n_tx']}, "
        f"tx_alpha={cfg['tx_alpha']}), log M* fixed"
    )
    ds.attrs["cumulative_mass"] = "trapezoid integral of the returned SFR (piecewise linear between nodes)"
    return ds


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="dense_basis SFHs", unit="block")


# ---------------------------------------------------------------------------------------------
# the common dataset
# ---------------------------------------------------------------------------------------------


def sfh_dataset(time, sfr, cumulative, percentiles, family: str, stellar_mass: float) -> xr.Dataset:
    """Wrap SFRs and cumulative mass fractions (n_sfh, n_time) as the SFH product; computes the percentiles."""
    time = np.asarray(time, float)
    perc = percentile_times(time, cumulative, percentiles)
    n = np.shape(sfr)[0]
    ds = xr.Dataset(
        {
            "sfr": (
                ("sfh", "time"),
                np.asarray(sfr, np.float32),
                {"units": "Msun/yr", "long_name": "star-formation rate"},
            ),
            "cumulative_mass_fraction": (
                ("sfh", "time"),
                np.asarray(cumulative, float),
                {
                    "units": "1",
                    "long_name": "fraction of the formed mass formed before t (canonical; labels and weights derive from it)",
                },
            ),
            "percentiles": (
                ("sfh", "percentile"),
                perc,
                {
                    "units": "Gyr",
                    "long_name": "cosmic time at which the given percentage of the mass had formed",
                    "method": "linear interpolation of cumulative_mass_fraction between time nodes",
                },
            ),
        },
        coords={
            "sfh": ("sfh", np.arange(n), {"long_name": "SFH index"}),
            "time": ("time", time, {"units": "Gyr", "long_name": "cosmic time (see time_convention)"}),
            "percentile": (
                "percentile",
                np.asarray(percentiles, int),
                {"units": "percent", "long_name": "mass percentile"},
            ),
            "label_name": ("percentile", percentile_names(percentiles)),
        },
        attrs={
            "family": family,
            "time_convention": TIME_CONVENTION,
            "t_obs_gyr": float(time[-1]),
            "redshift": 0.0,
            "stellar_mass_msun": float(stellar_mass),
            "stellar_mass_note": "mass formed (no stellar mass loss is modelled)",
        },
    )
    return ds


def make_family(
    family: str, sfh_cfg: dict, seed: int, processes: int = 1, progress: bool = True, cells: Sequence[str] | None = None
) -> xr.Dataset:
    """The SFH product of one family from the `sfh:` config section (``cells``: see make_nonparametric)."""
    percentiles = sfh_cfg["percentiles"]
    if family == "parametric":
        return make_parametric(sfh_cfg["parametric"], sfh_cfg["stellar_mass"], percentiles, seed=seed)
    if family == "nonparametric":
        return make_nonparametric(
            sfh_cfg["nonparametric"],
            sfh_cfg["stellar_mass"],
            seed,
            percentiles,
            processes=processes,
            progress=progress,
            cells=cells,
        )
    raise ValueError(f"unknown SFH family {family!r} (choose from {FAMILIES})")

"""Vectorised re-implementation of CHEMPY's one-zone galactic chemical-evolution model.

This follows ``chem-model.md`` (the specification of ``single_timestep_chempy`` in the ChempyMulti
fork with the TNG yield set) step by step, quirks included, but runs a whole batch of parameter sets
at once with PyTorch: the only Python loop is over the (at most 27) time steps.

Main entry points
-----------------
:func:`simulate`
    ``abundances, valid = simulate(theta, yields)``: (N, 6) parameters -> (N, 9) abundances in
    CHEMPY's output order ``[C/Fe], [Fe/H], [H/Fe], [He/Fe], [Mg/Fe], [N/Fe], [Ne/Fe], [O/Fe], [Si/Fe]``
    and an (N,) mask of the sets CHEMPY accepts.
:func:`run_model`
    the same model returning the full bookkeeping (time grid, SFR, ISM and corona element masses,
    infall, metallicity, feedback) for every step, for diagnostics and the mass-conservation test.

How the per-SSP feedback is vectorised (chem-model.md §5–§8, §12)
----------------------------------------------------------------
CHEMPY's IMF is sampled on 5000 linearly spaced masses and every mass integral is a half-open sum
over grid points. A grid point of mass ``x`` dies in the first age step ``t_m >= tau(x, Z)``, so for
each SSP and each age ``t_m`` only the *number of grid points still alive*, ``j_m``, matters. The
lifetime fit is a quadratic in ``log10 m``, so ``j_m`` is found from its root and then checked
exactly by evaluating the fit on the two grid points around the estimate (equal to the brute-force
count; tested). The grid point ``x = 100`` never dies (``j`` is capped at 4999).

The SN II and AGB mass bins partition the grid into segments. For an SSP with metallicity weights
and birth composition applied, the yield per unit mass ``y_s`` of each segment is one small matrix
product; the yield returned by all grid points below index ``j`` is the cumulative
``Phi(j) = sum_{s'<s} m_s' y_s' + (C[j] - C[lo_s]) y_s`` (``C`` the cumulative IMF mass, ``s`` the
segment of ``j``), and the feedback of age step m is ``Phi(j_{m-1}) - Phi(j_m)``. The AGB cut-off
raises the indices to the bottom of the SN II range once the dying mass drops below 1 M☉.

Two sums are evaluated in closed form instead of on long grids: the cumulative IMF above 1 M☉
(Euler-Maclaurin, equal to the grid sum to ~1e-15) and the SN Ia normalisation (Hurwitz zeta);
the extended-grid SFR sum is a geometric-type series.

Performance: everything is float64; chunks of ~2000 rows are run by ``n_workers`` threads with
single-threaded torch ops (see :func:`simulate`). On CPU the cost is memory traffic and per-op
overhead, so the layouts avoid broadcasting over short inner axes: the per-step gas state is kept
batch-last ``(28, 9, B)``, the SSP tables segment-major ``(B, S+1, 10)`` with the birth composition
applied after the differencing (the feedback is linear in it), and the SN Ia feedback, which does not
depend on the state, is a convolution computed once before the time loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np
import torch

from .yields import ELEMENTS, YieldSet

#: Names of the six inputs, in the order of the columns of ``theta``.
PARAMETER_NAMES: tuple[str, ...] = (
    "alpha_IMF",
    "log10_N_Ia",
    "log10_SFE",
    "log10_SFR_scale",
    "outflow_fraction",
    "birth_time",
)
#: Output columns: ``[X/Fe]`` for every traced element except Fe, which holds ``[Fe/H]``.
OUTPUT_LABELS: tuple[str, ...] = tuple("[Fe/H]" if e == "Fe" else f"[{e}/Fe]" for e in ELEMENTS)

T_END = 13.797617  # model end time (Gyr)
N_NOMINAL = 28  # nominal number of time points
MAX_STAR_AGE = 13.0  # CHEMPY asserts age = T_END - T <= 13 Gyr
SFR_BIRTH_MIN_RATIO = 0.05  # SFR at birth / mean SFR below this -> rejected
SNIA_DELAY = 0.04  # Gyr
SNIA_EXPONENT = 1.12
SNIA_HORIZON = 13.8  # Gyr; the discrete DTD is normalised on a grid reaching this age
X_H, X_HE = 0.76, 0.24

#: Asplund et al. (2009) photospheric values as tabulated in CHEMPY, eps = log10(N_X/N_H) + 12.
SOLAR_EPS = {"H": 12.00, "He": 10.93, "C": 8.43, "N": 7.83, "O": 8.69, "Ne": 7.93, "Mg": 7.60, "Si": 7.51, "Fe": 7.50}
ATOMIC_MASS = {
    "H": 1.00794,
    "He": 4.002602,
    "C": 12.0107,
    "N": 14.0067,
    "O": 15.9994,
    "Ne": 20.1797,
    "Mg": 24.305,
    "Si": 28.0855,
    "Fe": 55.845,
}

# Chabrier_TNG IMF
_IMF_A, _IMF_MC, _IMF_SIGMA, _IMF_B = 0.852464, 0.079, 0.69, 0.237912
IMF_MASSES = np.linspace(0.1, 100.0, 5000)

# Portinari et al. (1998) lifetime fit as in CHEMPY: log10(tau/yr) = poly(log10 m, log10 Z)
_LT = (10.0153615, -3.91089893, 0.99947209, -0.03601771, -0.31139679, 0.09109059, -0.03218365, -0.01323112)

_IH, _IHE, _IFE = ELEMENTS.index("H"), ELEMENTS.index("He"), ELEMENTS.index("Fe")
_METALS = [i for i, e in enumerate(ELEMENTS) if e not in ("H", "He")]
_WINDOW = 1  # the exact death count is searched in [estimate - _WINDOW, estimate + _WINDOW)


def lifetime_gyr(mass, metallicity):
    """Stellar lifetime in Gyr (Portinari et al. 1998 fit as in CHEMPY; ``lZ = -5`` iff ``Z <= 0``)."""
    m = torch.as_tensor(mass, dtype=torch.float64)
    z = torch.as_tensor(metallicity, dtype=torch.float64)
    lm = torch.log10(m)
    lz = torch.where(z > 0, torch.log10(z.clamp_min(1e-300)), torch.full_like(z, -5.0))
    c = _LT
    log_tau = (
        c[0]
        + c[1] * lm
        + c[2] * lm**2
        + c[3] * lz
        + c[4] * lm * lz
        + c[5] * lm**2 * lz
        + c[6] * lz**2
        + c[7] * lz**2 * lm
    )
    return 10.0**log_tau / 1e9


def imf_mass_fractions(alpha_imf: float) -> np.ndarray:
    """Fraction of SSP mass carried by each of the 5000 IMF grid points (Chabrier_TNG, §5)."""
    x = IMF_MASSES
    dn = np.where(
        x < 1,
        _IMF_A / x * np.exp(-(np.log10(x / _IMF_MC) ** 2) / (2 * _IMF_SIGMA**2)),
        np.where(x > 1, _IMF_B * x**alpha_imf, 0.0),
    )
    xdn = x * dn
    return xdn / xdn.sum()


class _Prepared:
    """Everything that depends only on the yield set (and device/dtype), computed once."""

    def __init__(self, ys: YieldSet, device: torch.device, dtype: torch.dtype):
        kw = dict(device=device, dtype=dtype)
        self.kw = kw
        x = IMF_MASSES
        if np.any(x == 1.0):  # pragma: no cover - 1.0 is not a grid point
            raise AssertionError("the IMF grid must not contain m = 1 exactly")
        self.dx = float((x[-1] - x[0]) / (len(x) - 1))  # numpy.linspace step: x_i = x0 + i * dx
        self.x0 = float(x[0])
        self.n_grid = len(x)
        self.lm = torch.as_tensor(np.log10(x), **kw)
        self.window_offsets = torch.arange(2 * _WINDOW, device=device)
        # grid masses (as _IMF computes them from the index), their log and 1/x^2, for look-ups
        xg = torch.arange(len(x) + 1, **kw) * self.dx + self.x0
        self.x_grid, self.lnx_grid, self.inv2_grid = xg, torch.log(xg), 1 / (xg * xg)
        # IMF below 1 M☉ (alpha-independent): cumulative x*dn over grid points 0..i0-1
        low = x < 1
        self.n_low = int(low.sum())
        xdn_low = _IMF_A * np.exp(-(np.log10(x[low] / _IMF_MC) ** 2) / (2 * _IMF_SIGMA**2))
        self.low_cum = torch.as_tensor(np.concatenate([[0.0], np.cumsum(xdn_low)]), **kw)  # (i0 + 1,)
        self.low_total = float(self.low_cum[-1])

        # Yield bins of both channels as grid-index ranges [lo, hi), merged into one partition of
        # the grid into "segments" (gaps and the mass ranges without yields get empty segments).
        segs = []  # (lo_idx, hi_idx, channel, bin)
        for ch, table in enumerate((ys.snii, ys.agb)):
            e = np.searchsorted(x, table.bin_edges, side="left")
            segs += [(int(e[b]), int(e[b + 1]), ch, b) for b in range(len(table.masses)) if e[b + 1] > e[b]]
        segs.sort()
        bounds, labels = [0], []
        for lo, hi, ch, b in segs:
            if lo < bounds[-1]:
                raise ValueError("the SN II and AGB mass ranges overlap")
            if lo > bounds[-1]:
                bounds.append(lo)
                labels.append(None)
            bounds.append(hi)
            labels.append((ch, b))
        if bounds[-1] < len(x):
            bounds.append(len(x))
            labels.append(None)
        self.seg_bounds = torch.as_tensor(bounds, device=device)  # (S+1,)
        self.n_seg = len(labels)
        lut = np.searchsorted(np.asarray(bounds), np.arange(len(x) + 1), side="right") - 1
        self.seg_of_index = torch.as_tensor(np.minimum(lut, self.n_seg - 1), device=device)  # (5001,)

        # Tables in segment order (zeros elsewhere), 9 net yields + the unprocessed fraction as a
        # 10th column; rows r = SN II metallicities, then AGB metallicities.
        ne = len(ELEMENTS)
        rows = []
        tables = [_at_least_two_tables(t) for t in (ys.snii, ys.agb)]  # (Z, net, unprocessed)
        for ch, (zt, net, unproc) in enumerate(tables):
            for k in range(len(zt)):
                yu = np.zeros((self.n_seg, ne + 1))
                for sgi, lab in enumerate(labels):
                    if lab is not None and lab[0] == ch:
                        yu[sgi, :ne] = net[k, lab[1]]
                        yu[sgi, ne] = unproc[k, lab[1]]
                rows.append(yu)
        # (R, (S + 1) * 10), segment-major (contiguous 10-vectors) with a zero segment in front:
        # w @ seg_yu_0 -> (B, S+1, 10), whose in-place cumulative sum over IMF-weighted segments holds
        # the cumulative yield at every segment bound (row 0 = 0)
        rows0 = np.concatenate([np.zeros((len(rows), 1, ne + 1)), np.stack(rows)], 1)
        self.seg_yu_0 = torch.as_tensor(rows0.reshape(len(rows), -1), **kw)
        # metallicity nodes (log10) for the interpolation weights (§7.3)
        self.n_tab = (len(tables[0][0]), len(tables[1][0]))
        nodes = [np.log10(np.where(zt == 0, 1e-10, zt)) for zt, _, _ in tables]
        self.snii_zero_table = bool(tables[0][0][0] == 0)
        if tables[1][0][0] == 0:
            raise ValueError("an AGB table at Z = 0 is not supported")
        self.node_flat = torch.as_tensor(np.concatenate(nodes), **kw)
        self.node_offset = torch.as_tensor([0, self.n_tab[0]], device=device)
        big = 1e300
        self.inner_nodes = torch.as_tensor(
            np.stack([np.concatenate([n[1:-1], np.full(max(self.n_tab) - len(n), big)]) for n in nodes]), **kw
        )
        # clamps of log10 Z: SN II extrapolates below its lowest non-zero node, AGB does not (§7.3)
        self.inner_nodes_t = self.inner_nodes.T.contiguous()[:, :, None]  # (K, 2, 1)
        self.t_lo = torch.as_tensor([-big if self.snii_zero_table else nodes[0][0], nodes[1][0]], **kw)
        self.t_hi = torch.as_tensor([nodes[0][-1], nodes[1][-1]], **kw)

        agb_top = int(np.searchsorted(x, ys.agb.mass_range[1], side="left"))
        if ys.snii.mass_range[0] < ys.agb.mass_range[1]:
            raise ValueError("the SN II mass range must lie above the AGB mass range")
        self.agb_top_index = agb_top
        # lifetime polynomial: [c0, c1, c2] = [1, lZ, lZ^2] @ LT
        c = _LT
        self.lt = torch.as_tensor([[c[0], c[1], c[2]], [c[3], c[4], c[5]], [c[6], c[7], 0.0]], **kw)
        self.lt_rows = tuple(self.lt.unbind(0))
        # AGB cut-off: mu(a) (piecewise linear through the grid) drops below the AGB lower mass limit
        # at the age a* interpolated between the two grid points bracketing that limit.
        i1 = int(np.searchsorted(x, ys.agb.mass_range[0], side="left"))
        xa, xb = float(x[i1 - 1]), float(x[i1])
        la, lb = math.log10(xa), math.log10(xb)
        self.cut_powers = torch.as_tensor([[1.0, 1.0], [la, lb], [la * la, lb * lb]], **kw)
        r = (ys.agb.mass_range[0] - xb) / (xa - xb)
        self.cut_weights = torch.as_tensor([[r], [1 - r]], **kw)
        y_ia = np.asarray(ys.snia_yields, dtype=np.float64).copy()
        y_ia[_IH] -= ys.snia_hydrogen_removed
        self.y_ia = torch.as_tensor(y_ia, **kw)
        prim = np.zeros(len(ELEMENTS))
        prim[_IH], prim[_IHE] = X_H, X_HE
        self.primordial = torch.as_tensor(prim, **kw)
        metal = np.array([0.0 if e in ("H", "He") else 1.0 for e in ELEMENTS])
        self.metal_and_all = torch.as_tensor(np.stack([metal, np.ones(len(ELEMENTS))], 1), **kw)  # (9, 2)
        self.log_norm = torch.as_tensor(
            [math.log10(ATOMIC_MASS["H"] / ATOMIC_MASS[e]) + 12 - SOLAR_EPS[e] for e in ELEMENTS], **kw
        )


def _at_least_two_tables(t):
    """(Z, net, unprocessed) of a channel; a single table is duplicated at 10 Z (weights then sum
    to one over identical tables, i.e. no metallicity dependence)."""
    zt = np.asarray(t.metallicities, dtype=np.float64)
    net, unproc = np.asarray(t.net_yields), np.asarray(t.unprocessed)
    if len(zt) == 1:
        zt = np.array([zt[0], 10 * zt[0] if zt[0] > 0 else 0.02])
        net, unproc = np.concatenate([net, net]), np.concatenate([unproc, unproc])
    return zt, net, unproc


_CACHE: WeakKeyDictionary[YieldSet, dict] = WeakKeyDictionary()


def _prepared(ys: YieldSet, device, dtype) -> _Prepared:
    per = _CACHE.setdefault(ys, {})
    key = (str(device), dtype)
    if key not in per:
        per[key] = _Prepared(ys, torch.device(device), dtype)
    return per[key]


@dataclass
class GCERun:
    """Full bookkeeping of a batch of runs (all tensors have the batch as first dimension).

    The time axis always has 28 entries; entries at index ``>= n`` are padding (the model is read at
    ``n - 1``, normally 27). Element axes follow :data:`ELEMENTS`.
    """

    theta: torch.Tensor  # (B, 6)
    time: torch.Tensor  # (B, 28) Gyr
    n_steps: torch.Tensor  # (B,) number of grid points n (28, or 27 for T > T_END)
    sfr: torch.Tensor  # (B, 28) mass formed per step (sums to 1 over k < n)
    frac: torch.Tensor  # (B,) shortened-SFR rescaling (fraction of extended-grid SF before T)
    sfr_birth_ratio: torch.Tensor  # (B,) SFR at birth / mean SFR on the extended grid
    ism: torch.Tensor  # (B, 28, 9) ISM element masses after star formation
    corona: torch.Tensor  # (B, 28, 9) corona element masses
    corona_gas: torch.Tensor  # (B, 28) corona total gas (tracked separately, as in CHEMPY)
    infall: torch.Tensor  # (B, 28) gas moved corona -> ISM at each step
    metallicity: torch.Tensor  # (B, 28) Z_k (7 traced metals / 9-element gas)
    feedback: torch.Tensor  # (B, 28, 9) stellar feedback F entering the gas at each step
    n_snia: torch.Tensor  # (B, 28) SN Ia per unit SSP mass at each age step (nIa_m)
    valid: torch.Tensor  # (B,) accepted by CHEMPY's tests
    abundances: torch.Tensor  # (B, 9) output vector (NaN where not valid)

    @property
    def stellar_mass(self) -> torch.Tensor:
        """(B, 28) mass in stars and remnants: mass formed so far minus mass returned to the gas."""
        return torch.cumsum(self.sfr, 1) - torch.cumsum(self.feedback.sum(-1), 1)


class _IMF:
    """Cumulative IMF mass ``C[j] = sum_{i<j} dm_i`` on the 5000-point grid for a batch of slopes.

    Below 1 M☉ the IMF does not depend on alpha (tabulated). Above, ``sum x_i^p`` (``p = alpha + 1``)
    over the linear grid is evaluated in closed form with the Euler-Maclaurin formula (4 Bernoulli
    terms; the first neglected term is < 1e-15 relative for |p| < 3, grid step 0.02, x >= 1), which
    equals the explicit cumulative sum to rounding error without 5000 exponentials per sample.
    """

    def __init__(self, P: _Prepared, alpha: torch.Tensor):
        self.P = P
        p = (alpha + 1)[:, None]  # x*dn ~ x^p above 1 M☉
        d = P.dx
        self.p = p
        self.alpha = alpha[:, None]
        self.q = p + 1  # exponent of the integral of x^p
        self.small = self.q.abs() < 1e-9
        self.any_small = bool(self.small.any())  # alpha = -2 (to 1e-9) needs the log form below
        self.q_safe = torch.where(self.small, torch.ones_like(p), self.q)
        self.inv_q_dx = 1 / (self.q_safe * d)
        self.neg_half_dx = torch.full_like(p, -0.5)
        pp = p * (p - 1) * (p - 2)
        self.a1 = d * p / 12
        self.a3 = d**3 * pp / 720
        pp = pp * (p - 3) * (p - 4)
        self.a5 = d**5 * pp / 30240
        self.a7 = d**7 * pp * (p - 5) * (p - 6) / 1209600
        ends = torch.tensor([[P.n_low, P.n_grid]], device=alpha.device)
        g = self._g(ends.expand(p.shape[0], -1))
        self.g0 = g[:, :1]
        self.total = P.low_total + _IMF_B * (g[:, 1:] - self.g0)
        # C above 1 M☉ before dividing by the total: B * (G - g0) + low_total = B * G + c_offset
        self.c_offset = P.low_total - _IMF_B * self.g0

    def _g(self, j):
        """Euler-Maclaurin sum G at integer grid indices ``j`` (x, log x, 1/x^2 are looked up)."""
        P = self.P
        flat = j.reshape(-1)
        x = P.x_grid.index_select(0, flat).view(j.shape)
        lnx = P.lnx_grid.index_select(0, flat).view(j.shape)
        inv2 = P.inv2_grid.index_select(0, flat).view(j.shape)
        y = self.q * lnx
        # integral_1^x t^p dt / dx, stable through p = -1 (alpha = -2)
        if self.any_small:
            integral = torch.where(self.small, lnx * (1 + 0.5 * y) / P.dx, torch.expm1(y) * self.inv_q_dx)
        else:
            integral = torch.expm1_(y).mul_(self.inv_q_dx)
        xp = torch.exp_(lnx.mul_(self.alpha))  # x^(p-1) = x^alpha
        h = torch.addcmul(self.a5, self.a7, inv2, value=-1)
        h = h.mul_(inv2).sub_(self.a3)
        h = h.mul_(inv2).add_(self.a1)
        # G = integral/dx + x^p (-1/2 + a1/x - a3/x^3 + a5/x^5 - a7/x^7)
        return integral.addcmul_(xp, h.addcmul_(x, self.neg_half_dx))

    def __call__(self, j):
        """C at integer grid indices ``j`` (B, n) -> (B, n)."""
        P = self.P
        high = self._g(j).mul_(_IMF_B).add_(self.c_offset)
        low = P.low_cum.index_select(0, j.clamp_max(P.n_low).view(-1)).view(j.shape)
        return torch.where(j > P.n_low, high, low).div_(self.total)


def _z_weights(P: _Prepared, z: torch.Tensor, log10_z: torch.Tensor | None = None) -> torch.Tensor:
    """(R, B) logarithmic metallicity weights of all tables (SN II then AGB), unclipped (§7.3).

    Batch-last: all operations run over contiguous rows of length B.
    """
    B = z.shape[0]
    lz = (torch.log10(z) if log10_z is None else log10_z)[None, :]  # -inf for z = 0
    if P.snii_zero_table:  # z = 0 -> the Z = 0 table (node at log10(1e-10))
        lz = torch.where(lz == -math.inf, P.node_flat[0], lz)
    t = torch.maximum(torch.minimum(lz, P.t_hi[:, None]), P.t_lo[:, None])  # (2, B)
    j_lo = (t > P.inner_nodes_t).sum(0).add_(P.node_offset[:, None])  # (2, B) flat index
    flat = j_lo.view(-1)
    lo = P.node_flat.index_select(0, flat).view(2, B)
    hi = P.node_flat.index_select(0, flat + 1).view(2, B)
    w_hi = (t - lo).div_(hi - lo)
    w = torch.zeros(P.node_flat.shape[0], B, dtype=z.dtype, device=z.device)
    w.scatter_(0, j_lo, 1 - w_hi)
    return w.scatter_add_(0, j_lo + 1, w_hi)


def _lifetime_coefficients(P: _Prepared, z: torch.Tensor, log10_z: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3) coefficients of ``log10(tau/yr) = c0 + c1 lM + c2 lM^2``; ``lZ = -5`` iff ``Z <= 0``."""
    lz = torch.where(z > 0, torch.log10(z) if log10_z is None else log10_z, -5.0)[:, None]
    r0, r1, r2 = P.lt_rows
    return torch.addcmul(r0, lz, torch.addcmul(r1, lz, r2))


def _alive_counts(P: _Prepared, c, log_age):
    """Number of IMF grid points whose lifetime exceeds each age (B, L), exactly.

    ``c`` (B, 3) are the lifetime-polynomial coefficients, ``log_age`` is ``log10(age / yr)``. The
    root of the quadratic gives an estimate of the boundary; the fit is then evaluated on the grid
    points around it, so the count equals ``#{i : tau(x_i, Z) > age}``.
    """
    c0, c1, c2 = c[:, 0:1], c[:, 1:2], c[:, 2:3]
    q = c0 - log_age
    disc = torch.addcmul(c1 * c1, 4 * c2, q, value=-1).clamp_min_(0)
    lm_star = q.div_(disc.sqrt_().sub_(c1).mul_(0.5)).clamp_(-1.5, 2.5)
    # (an estimate: rounding here cannot change the exact count below)
    k_est = lm_star.mul_(math.log(10.0)).exp_().sub_(P.x0).div_(P.dx).ceil_()
    base = k_est.sub_(_WINDOW).clamp_(0, P.n_grid - 2 * _WINDOW).long()
    idx = base + P.window_offsets.view(-1, *([1] * base.dim()))  # (2W, B, L): base + w
    lm = P.lm.index_select(0, idx.view(-1)).view(idx.shape)
    alive = torch.addcmul(c0, torch.addcmul(c1, c2, lm), lm) > log_age
    return alive.sum(0).add_(base)


def _ssp_feedback(P: _Prepared, imf: _IMF, z, ages, log_ages, scale=None):
    """Stellar (SN II + AGB) feedback per unit SSP mass at age steps 1..L: (B, L, 10) (§7.4).

    Columns 0..8 are the net yields of the elements, column 9 the unprocessed mass: the feedback of
    an SSP with birth composition ``xb`` is ``out[..., :9] + out[..., 9:] * xb`` (it is linear in
    ``xb``, which is therefore applied by the caller after the differencing below).

    With the SSP's yield per unit mass ``y_s`` of every segment ``s`` (metallicity weights applied)
    and the IMF mass ``m_s`` of the segments, the cumulative yield at the segment bounds is
    ``K_s = sum_{s'<s} m_s' y_s'`` and the yield returned by the grid points below index ``j`` (in
    segment ``s = [lo_s, hi_s)``) is the linear interpolation
    ``Phi(j) = K_s + f (K_{s+1} - K_s)``, ``f = (C[j] - C[lo_s]) / m_s``; the stars dying in age
    step m are those with index in ``[j_m, j_{m-1})``. Once the AGB channel is cut off (dying mass
    below 1 M☉), indices are raised to the bottom of the SN II range so that only SN II stars count.
    Layout: segment-major with contiguous 10-vectors; the pairs ``(K_s, K_{s+1})`` are overlapping
    rows of one strided view, so the look-up at the L + 2 indices is a single ``index_select``.
    """
    B, L = ages.shape
    nc = len(ELEMENTS) + 1
    S = P.n_seg
    log10_z = torch.log10(z)
    c = _lifetime_coefficients(P, z, log10_z)  # (B, 3)
    alive = _alive_counts(P, c, log_ages).clamp_max_(P.n_grid - 1)  # x = 100 never dies

    # AGB cut-off (§7.4): the AGB channel is dropped from the first age step whose dying mass mu_m < 1.
    a_star = torch.pow(10.0, c @ P.cut_powers - 9.0) @ P.cut_weights  # (B, 1)
    agb_off = ages > a_star  # a prefix is "on"
    n_on = L - agb_off.sum(1, keepdim=True)
    top = torch.full((B, 1), P.n_grid - 1, device=z.device, dtype=alive.dtype)
    e = torch.maximum(alive, agb_off * P.agb_top_index)
    prev = torch.gather(torch.cat([top, alive], 1), 1, n_on).clamp_min_(P.agb_top_index)
    j = torch.cat([top, e, prev], 1)  # (B, L+2)

    # cumulative IMF-weighted yields at the segment bounds K (B, S+1, 10), built in place
    w = _z_weights(P, z, log10_z)  # (R, B)
    if scale is not None:
        w = w.mul_(scale)
    cum = (w.T @ P.seg_yu_0).view(B, S + 1, nc)
    cum.mul_(imf.seg_mass0).cumsum_(1)
    pairs = cum.view(-1).as_strided((B * (S + 1) - 1, 2 * nc), (nc, 1))  # row r: (K_r, K_{r+1})

    seg = P.seg_of_index.index_select(0, j.view(-1)).view(B, L + 2)  # (B, L+2)
    frac = (imf(j) - torch.gather(imf.bounds_c, 1, seg)).mul_(torch.gather(imf.inv_seg_mass, 1, seg))
    rows = pairs.index_select(0, (seg + imf.row_offset).view(-1))
    phi = torch.lerp(rows[:, :nc], rows[:, nc:], frac.view(-1, 1)).view(B, L + 2, nc)
    out = phi[:, :L] - phi[:, 1 : L + 1]
    # at the first "off" step m* (row n_on) the upper point is raised too
    col = n_on.clamp_max(L - 1)[:, :, None].expand(-1, 1, nc)
    fix = (phi[:, L + 1 :] - torch.gather(phi, 1, col)) * (n_on < L)[:, :, None]
    return out.scatter_add_(1, col, fix)


def _as_theta(theta, device, dtype) -> torch.Tensor:
    t = torch.as_tensor(theta, dtype=dtype, device=device)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != len(PARAMETER_NAMES):
        raise ValueError(
            f"theta must have shape (N, {len(PARAMETER_NAMES)}) with columns {PARAMETER_NAMES}; got {tuple(t.shape)}"
        )
    return t


def _gamma_pdf(t, scale):
    p = t * torch.exp(-t / scale) / scale**2
    return torch.where(p == 0, torch.full_like(p, 1e-10), p)


def _snia_rates(n0, dt, n_ages: int):
    """(B, n_ages) SN Ia per unit SSP mass at ages m*dt (§8).

    The DTD is point-sampled at m*dt and normalised by its sum over m = 0 .. M, M the first index
    with M*dt >= 13.8 Gyr; that sum of m^-s is a difference of Hurwitz zeta functions.
    """
    kw = dict(dtype=dt.dtype, device=dt.device)
    rate = (SNIA_EXPONENT - 1) / SNIA_DELAY
    a = torch.arange(n_ages, **kw) * dt[:, None]
    g = torch.where(a >= SNIA_DELAY, rate * (a.clamp_min(SNIA_DELAY) / SNIA_DELAY) ** (-SNIA_EXPONENT), 0.0)
    m_first = torch.ceil(SNIA_DELAY / dt).clamp_min(1)  # first m with m*dt >= tau_Ia
    m_last = torch.ceil(SNIA_HORIZON / dt)  # first m with m*dt >= 13.8
    s = torch.tensor(SNIA_EXPONENT, **kw)
    total = (
        rate
        * (dt / SNIA_DELAY) ** (-SNIA_EXPONENT)
        * (torch.special.zeta(s, m_first) - torch.special.zeta(s, m_last + 1))
    )
    return (n0 / total)[:, None] * g


def _imf_setup(P: _Prepared, alpha) -> _IMF:
    """IMF cumulative-mass evaluator with the cumulative mass at the segment bounds."""
    imf = _IMF(P, alpha)
    imf.bounds_c = imf(P.seg_bounds.expand(alpha.shape[0], -1))  # (B, S+1)
    seg_mass = imf.bounds_c[:, 1:] - imf.bounds_c[:, :-1]  # (B, S)
    imf.inv_seg_mass = 1 / seg_mass
    imf.seg_mass0 = torch.cat([torch.zeros_like(seg_mass[:, :1]), seg_mass], 1)[:, :, None]  # (B, S+1, 1)
    imf.row_offset = torch.arange(alpha.shape[0], device=alpha.device)[:, None] * (P.n_seg + 1)
    return imf


def ssp_feedback_table(
    yields: YieldSet,
    *,
    alpha_imf: float,
    metallicity: float,
    birth_composition,
    dt: float,
    n_ages: int,
    log10_n_ia: float = -2.89,
) -> torch.Tensor:
    """Feedback table of one SSP: (n_ages + 1, 9) mass of each element returned per unit SSP mass in
    age steps m = 0 .. n_ages (row 0 is zero), for an age grid of spacing ``dt`` Gyr (§5–§8).

    ``birth_composition`` is the (9,) gas composition used for the unprocessed ejecta (it is
    normalised). This is the building block of :func:`simulate`, exposed for tests and diagnostics.
    """
    P = _prepared(yields, "cpu", torch.float64)
    kw = P.kw
    z = torch.tensor([float(metallicity)], **kw)
    xb = torch.as_tensor(birth_composition, **kw).reshape(1, -1)
    xb = xb / xb.sum()
    dt_t = torch.tensor([float(dt)], **kw)
    ages = torch.arange(1, n_ages + 1, **kw)[None] * dt_t[:, None]
    n_ia = _snia_rates(torch.tensor([10.0**log10_n_ia], **kw), dt_t, n_ages + 1)
    with torch.no_grad():
        imf = _imf_setup(P, torch.tensor([float(alpha_imf)], **kw))
        f = _ssp_feedback(P, imf, z, ages, torch.log10(ages) + 9.0)[0]
        y = f[:, :-1] + f[:, -1:] * xb
        y = y + n_ia[0, 1:, None] * P.y_ia
    return torch.cat([torch.zeros(1, len(ELEMENTS), **kw), y])


def _run_chunk(theta: torch.Tensor, P: _Prepared, record: bool):
    kw = P.kw
    B = theta.shape[0]
    nt = N_NOMINAL
    ne = len(ELEMENTS)
    finite = torch.isfinite(theta).all(1)
    age = T_END - theta[:, 5]
    domain = finite & (age <= MAX_STAR_AGE) & (theta[:, 5] > 0)
    # Out-of-domain rows (CHEMPY raises for them) are replaced by a harmless set and flagged invalid.
    safe = torch.tensor([-2.3, -2.89, -0.3, 0.55, 0.5, 13.0], **kw)
    theta_run = torch.where(domain[:, None], theta, safe)
    alpha, lg_nia, lg_sfe, lg_scale, f_out, t_birth = theta_run.unbind(1)
    n0, sfe, scale = 10.0**lg_nia, 10.0**lg_sfe, 10.0**lg_scale

    # --- time grids (§2) ---
    t_span = T_END - (T_END - t_birth)  # (t_end - age), as CHEMPY computes it
    n_ext = torch.floor((nt - 1) * T_END / t_span + 1)
    domain = domain & (n_ext >= 3)
    n_ext = n_ext.clamp_min(3)
    new_end = t_span * (n_ext - 1) / (nt - 1)
    dt = new_end / (n_ext - 1)
    k_star = torch.where(n_ext >= nt, torch.full_like(n_ext, nt - 1), n_ext - 1)
    n_steps = (k_star + 1).long()
    steps = torch.arange(nt, **kw)
    time = steps * dt[:, None]
    p_sim = _gamma_pdf(time, scale[:, None])
    # sum of p over the extended grid: 1e-10 (t = 0) + (dt/s^2) sum_{k=1}^{N-1} k r^k, r = exp(-dt/s)
    x_r = dt / scale
    one_minus_r = -torch.expm1(-x_r)
    r = 1 - one_minus_r
    n_top = n_ext - 1
    s_ext = 1e-10 + x_r / scale * r * (1 - (n_top + 1) * r**n_top + n_top * r ** (n_top + 1)) / one_minus_r**2
    p_birth = torch.gather(p_sim, 1, k_star.long()[:, None])[:, 0]
    ratio = p_birth * (n_ext - 1) / s_ext
    in_run = steps < n_steps[:, None]
    s_run = (p_sim * in_run).sum(1)
    frac = s_run / s_ext
    sfr = p_sim / s_run[:, None]
    log_ages = torch.log10(time[:, 1:]) + 9.0

    n_ia = _snia_rates(n0, dt, nt)
    imf = _imf_setup(P, alpha)

    # --- state (§4) ---
    # The per-step state is kept batch-last, (28, 9, B) and (28, B): every per-step operation then
    # runs over contiguous rows of length B (broadcasting over a short inner axis is slow on CPU).
    prim = P.primordial[:, None]  # (9, 1)
    ism = torch.zeros(nt, ne, B, **kw)
    cor = torch.zeros_like(ism)
    corgas = torch.zeros(nt, B, **kw)
    infall = torch.zeros(nt, B, **kw)
    zmet = torch.zeros(nt, B, **kw)
    gas_before_sf = torch.zeros(nt, B, **kw)
    # feedback entering the gas at each step, (B, 28, 9). The SN Ia part does not depend on the
    # state: sum_{i<k} sfr_i nIa_{k-i} y_Ia, a convolution done once (nIa_0 = 0: no SN Ia at age 0).
    ia = torch.zeros(B, nt, **kw)
    for i in range(nt - 1):
        ia[:, i + 1 :].addcmul_(n_ia[:, 1 : nt - i], sfr[:, i : i + 1])
    fbuf = ia[:, :, None] * P.y_ia  # (B, 28, 9)
    sfe_dt = sfe * dt
    sfr_t = sfr.T.contiguous()  # (28, B)
    need_t = (sfr / sfe_dt[:, None]).T.contiguous()
    sfr0 = sfr[:, 0]
    i0 = torch.maximum(1.0000001 * sfr0, sfr0 / sfe_dt)
    ism[0] = prim * i0 * (1 - sfr0 / i0)
    corgas[0] = sfr0 + (1 / frac - i0)
    cor[0] = prim * corgas[0]
    infall[0] = i0
    gas_before_sf[0] = i0
    f_in = 1 - f_out
    metal_and_all = P.metal_and_all.T.contiguous()  # (2, 9)

    for i in range(nt - 1):
        length = nt - 1 - i
        mz = metal_and_all @ ism[i]  # metals, all (2, B)
        torch.div(mz[0], mz[1], out=zmet[i])
        prev = ism[max(i - 1, 0)]
        xb = (prev / prev.sum(0)).T.contiguous()  # (B, 9)
        # feedback of the SSP born now (mass sfr_i), (B, L, 10)
        y = _ssp_feedback(P, imf, zmet[i], time[:, 1 : length + 1], log_ages[:, :length], sfr_t[i])
        fb = fbuf[:, i + 1 :]
        fb.add_(y[..., :ne])
        fb.addcmul_(y[..., ne:], xb[:, None, :])

        k = i + 1
        f = fbuf[:, k].T.contiguous()  # (9, B)
        s_k = sfr_t[k]
        new = torch.addcmul(ism[i], f_in, f)
        c_el = torch.addcmul(torch.addcmul(cor[i], f_out, f), prim, s_k)
        c_gas = corgas[i] + s_k + f_out * f.sum(0)
        there = new.sum(0)
        inf = ((need_t[k] - there) * 1.00000001).clamp_min_(0)
        inf = torch.where(inf + there <= s_k, 1.01 * (s_k - there), inf)
        inf = torch.minimum(inf, c_gas, out=infall[k])
        moved = c_el * (inf / c_gas)
        new += moved
        torch.sub(c_el, moved, out=cor[k])
        torch.sub(c_gas, inf, out=corgas[k])
        gas = torch.sum(new, 0, out=gas_before_sf[k])
        torch.mul(new, 1 - s_k / gas, out=ism[k])
    mz = metal_and_all @ ism[nt - 1]
    torch.div(mz[0], mz[1], out=zmet[nt - 1])
    # back to batch-first
    ism, cor = ism.permute(2, 0, 1), cor.permute(2, 0, 1)
    corgas, infall, zmet, gas_before_sf = corgas.T, infall.T, zmet.T, gas_before_sf.T

    # --- acceptance (§1.3, §4.4) and output (§9) ---
    tested = steps[None, :] < (n_steps - 1)[:, None]
    negative = ((ism < 0).any(2) | (ism.sum(2) < 0) | (corgas < 0)) & tested
    starved = ((gas_before_sf < sfr) & in_run).any(1)  # CHEMPY would raise an AssertionError
    final = torch.gather(ism, 1, (n_steps - 1)[:, None, None].expand(-1, 1, ne))[:, 0]
    x_h = torch.log10(final / final[:, _IH : _IH + 1]) + P.log_norm
    out = x_h - x_h[:, _IFE : _IFE + 1]
    out[:, _IFE] = x_h[:, _IFE]
    valid = domain & (ratio >= SFR_BIRTH_MIN_RATIO) & ~negative.any(1) & ~starved & torch.isfinite(out).all(1)
    out = torch.where(valid[:, None], out, torch.full_like(out, float("nan")))
    if not record:
        return out, valid
    c = torch.Tensor.contiguous
    return GCERun(
        theta=theta,
        time=time,
        n_steps=n_steps,
        sfr=sfr,
        frac=frac,
        sfr_birth_ratio=ratio,
        ism=c(ism),
        corona=c(cor),
        corona_gas=c(corgas),
        infall=c(infall),
        metallicity=c(zmet),
        feedback=fbuf,
        n_snia=n_ia,
        valid=valid,
        abundances=out,
    )


def run_model(theta, yields: YieldSet, *, device=None, dtype=torch.float64) -> GCERun:
    """Run the model and return the full per-step bookkeeping (:class:`GCERun`), as torch tensors."""
    device = (
        torch.device(device)
        if device is not None
        else (theta.device if isinstance(theta, torch.Tensor) else torch.device("cpu"))
    )
    t = _as_theta(theta, device, dtype)
    with torch.no_grad():
        return _run_chunk(t, _prepared(yields, device, dtype), record=True)


def simulate(
    theta, yields: YieldSet, *, chunk_size: int = 2048, n_workers: int | None = None, device=None, dtype=torch.float64
):
    """Abundances CHEMPY reports at the birth time, for a batch of parameter sets.

    Parameters
    ----------
    theta : (N, 6) array or tensor with columns :data:`PARAMETER_NAMES`: ``alpha_IMF``,
        ``log10_N_Ia`` (SN Ia per M☉ formed, up to 13.8 Gyr), ``log10_SFE`` (Gyr⁻¹),
        ``log10_SFR_scale`` (Gyr), ``outflow_fraction``, ``birth_time`` (Gyr). A single (6,) vector
        is treated as N = 1.
    yields : a :class:`~galaxy_sbi.chem.yields.YieldSet` (e.g. from :func:`load_chempy_yields`).
    chunk_size : rows simulated at once (memory ~ 0.05 MB per row; 1000-4000 balances per-op
        overhead against cache traffic on CPU; on a GPU pass a much larger value, e.g. 65536).
    n_workers : on CPU, chunks are run by this many threads. On CPU torch ops always run
        single-threaded (``torch.set_num_threads(1)`` for the duration of the call, restored
        afterwards, also for one worker): intra-op threads are much slower for these small tensors,
        and worker threads degrade gracefully on a busy machine. Default: ``torch.get_num_threads()``.
        Ignored on other devices.
    device, dtype : torch device (default: that of ``theta``, else CPU) and float type (float64;
        the step-2 ``N < 0`` rejection test is a sign test on small numbers).

    Returns
    -------
    abundances : (N, 9) in CHEMPY's order ``[C/Fe], [Fe/H], [H/Fe], [He/Fe], [Mg/Fe], [N/Fe],
        [Ne/Fe], [O/Fe], [Si/Fe]`` (:data:`OUTPUT_LABELS`); NaN where not valid. Same kind as the
        input: a NumPy array for array-like input, a tensor for tensor input.
    valid : (N,) boolean mask of accepted sets. A set is rejected where CHEMPY returns ``inf``
        (SFR at birth < 5 % of the mean, or a negative ISM element / ISM gas / corona gas mass at a
        step before the last), and also where CHEMPY would raise (birth time earlier than
        ``T_END - 13`` Gyr, gas below the step's SFR) or return non-finite numbers.
    """
    is_tensor = isinstance(theta, torch.Tensor)
    if device is None:
        device = theta.device if is_tensor else torch.device("cpu")
    device = torch.device(device)
    t = _as_theta(theta, device, dtype)
    P = _prepared(yields, device, dtype)
    n = t.shape[0]
    threads = torch.get_num_threads()
    workers = max(1, threads if n_workers is None else int(n_workers))
    if device.type != "cpu":
        workers = 1
    if workers > 1:  # give every worker a share of a small batch
        chunk_size = min(chunk_size, max(128, -(-n // workers)))
    starts = list(range(0, n, chunk_size))

    def run(start):
        with torch.no_grad():
            return _run_chunk(t[start : start + chunk_size], P, record=False)

    # On CPU the ops run single-threaded in every case: for these small tensors torch's intra-op
    # threads cost far more than they gain (~10x slower on a busy 2-core machine).
    cpu = device.type == "cpu"
    if cpu:
        torch.set_num_threads(1)
    try:
        if workers > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(workers, len(starts))) as pool:
                results = list(pool.map(run, starts))
        else:
            results = [run(s) for s in starts]
    finally:
        if cpu:
            torch.set_num_threads(threads)
    if results:
        out = torch.cat([r[0] for r in results])
        valid = torch.cat([r[1] for r in results])
    else:
        out = torch.zeros(0, len(ELEMENTS), dtype=dtype, device=device)
        valid = torch.zeros(0, dtype=torch.bool, device=device)
    if is_tensor:
        return out, valid
    return out.cpu().numpy(), valid.cpu().numpy()

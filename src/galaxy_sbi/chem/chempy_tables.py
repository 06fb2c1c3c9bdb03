"""The study's alternative yield set, processed into net yields exactly as CHEMPY does.

CHEMPY (Rybizki et al. 2017; the study's fork ChempyMulti, ``Chempy/yields.py``, MIT) turns published tables
into net yields per unit initial stellar mass on its own mass and metallicity grids. The study's alternative
set is three of them (ModelParameters ``yield_table_name_sn2 = 'Nomoto2013_net'``, ``yield_table_name_agb =
'Karakas16_net'``, ``yield_table_name_1a = 'Thielemann'``):

* SN II, Nomoto et al. (2013): CHEMPY ships the net yields already processed
  (``Nomoto2013/nomoto_net_met_ind_{0..4}.npy``, Z = 0.05, 0.02, 0.008, 0.004, 0.001; 13-40 M☉) with
  their remnant and unprocessed-wind fractions; :func:`nomoto2013_net` reads them.
* AGB, Karakas & Lugaro (2016) (Fishlock et al. 2014 at Z = 0.001): :func:`karakas16_net` ports
  ``Karakas16_net``: the wind's mass fractions X(i) of every model, normalised to sum to one, minus the initial
  composition of the star's surface file (normalised the same way), with CHEMPY's hand-copied mass and
  remnant lists; the unprocessed wind is 1 - remnant fraction. The mass grid differs between metallicities.
* SN Ia, Thielemann et al. (2003) as compiled by Travaglio et al. (2004): :func:`thielemann2003`.

The tables travel with galaxy-sbi (``data/chem/yields/alternative/``, see its README for the two rebuilt
Karakas surface files); tests/data/chempy_reference_alternative.npz holds real CHEMPY's abundances with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .yields import ELEMENTS, SNIA_RETAINED_MASS, YieldSet, YieldTable

NOMOTO_METALLICITIES = (0.05, 0.02, 0.008, 0.004, 0.001)  # CHEMPY's order of the .npy files
KARAKAS_METALLICITIES = (0.001, 0.007, 0.014, 0.03)

#: CHEMPY's hand-copied Karakas16_net masses and remnant masses (M☉) per metallicity
# fmt: off
KARAKAS_MASSES_REMNANTS = {
    0.001: (
        [1.0, 1.25, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0],
        [0.678, 0.669, 0.657, 0.668, 0.839, 0.948, 1.057, 1.189, 1.403, 1.176, 1.726, 1.659, 1.740, 1.962, 1.725, 2.062],
    ),
    0.007: (
        [1.0, 1.25, 1.5, 1.75, 1.9, 2.1, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0, 5.5, 6.0, 7.0]
        + [7.5],
        [0.606, 0.629, 0.646, 0.641, 0.657, 0.659, 0.663, 0.668, 0.679, 0.698, 0.728, 0.766, 0.802, 0.849, 0.859]
        + [0.873, 0.883, 0.895, 0.921, 0.956, 1.040, 1.116],
    ),
    0.014: (
        [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0, 5.5, 6.0, 7.0, 8.0],
        [0.585, 0.605, 0.616, 0.638, 0.66, 0.675, 0.679, 0.684, 0.694, 0.708, 0.73, 0.766, 0.813, 0.853, 0.862]
        + [0.87, 0.879, 0.9, 0.921, 0.976, 1.062],
    ),
    0.03: (
        [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0, 5.5, 6.0, 7.0, 8.0],
        [0.573, 0.590, 0.607, 0.625, 0.643, 0.661, 0.650, 0.670, 0.691, 0.713, 0.727, 0.744, 0.744, 0.806, 0.848]
        + [0.858, 0.867, 0.886, 0.907, 0.963, 1.053],
    ),
}
# fmt: on

THIELEMANN_MASS = 1.37409  # CHEMPY's self.masses: the yields are divided by it and multiplied back


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"yield table {path} not found (the study's alternative set, CHEMPY's layout)")
    return path


def _symbols(names) -> list[str]:
    """Karakas's lower-case element names as CHEMPY capitalises them; the first (``p``, protons) is H."""
    out = [n[0].upper() + n[1:] if len(n) == 2 else n[0].upper() for n in names]
    out[0] = "H"
    return out


def _table(metallicities, masses_per_z, fractions, remnant, unprocessed, mass_range) -> YieldTable:
    """A YieldTable from per-metallicity {element: (M,)} net yields on per-metallicity mass grids.

    Where the grids differ (Karakas16), every metallicity's bins are split on the union of all bin edges: a
    sub-bin carries the yield of the bin it lies in, so the IMF-weighted sums are those of CHEMPY's own bins.
    """

    def edges(m):
        m = np.asarray(m, float)
        return np.concatenate([[mass_range[0]], 0.5 * (m[1:] + m[:-1]), [mass_range[1]]])

    union = np.unique(np.concatenate([edges(m) for m in masses_per_z]))
    mid = 0.5 * (union[1:] + union[:-1])
    net, untraced, rem, unproc = [], [], [], []
    for k, m in enumerate(masses_per_z):
        b = np.searchsorted(edges(m), mid, side="right") - 1  # the bin of each sub-bin at this metallicity
        f = fractions[k]
        missing = [e for e in ELEMENTS if e not in f]
        if missing:  # CHEMPY would fail on it too (it indexes every table by one element list)
            raise ValueError(f"the table at Z = {metallicities[k]} has no {missing}")
        net.append(np.stack([f[e][b] for e in ELEMENTS], axis=-1))
        untraced.append(sum(v for e, v in f.items() if e not in ELEMENTS)[b])
        rem.append(np.asarray(remnant[k])[b])
        unproc.append(np.asarray(unprocessed[k])[b])
    same = all(len(m) == len(masses_per_z[0]) and np.allclose(m, masses_per_z[0]) for m in masses_per_z)
    return YieldTable(
        np.asarray(masses_per_z[0], float) if same else mid,
        np.asarray(metallicities, float),
        np.stack(net),
        np.stack(rem),
        np.stack(untraced),
        tuple(mass_range),
        unprocessed_fraction=np.stack(unproc),
        edges=None if same else union,
    )


def nomoto2013_net(directory: str | Path, mass_range=(8.0, 100.0)) -> YieldTable:
    """SN II net yields of Nomoto et al. (2013), CHEMPY's ``Nomoto2013_net``."""
    directory = Path(directory)
    rows = {}
    for i, z in enumerate(NOMOTO_METALLICITIES):
        t = np.load(_require(directory / "Nomoto2013" / f"nomoto_net_met_ind_{i}.npy"), allow_pickle=False)
        t = np.sort(t[(t["Mass"] >= mass_range[0]) & (t["Mass"] <= mass_range[1])], order="Mass")
        rows[z] = t
    zs = sorted(rows)
    species = [n for n in rows[zs[0]].dtype.names if n not in ("Mass", "mass_in_remnants", "unprocessed_mass_in_winds")]
    return _table(
        zs,
        [rows[z]["Mass"] for z in zs],
        [{e: np.asarray(rows[z][e], float) for e in species} for z in zs],
        [rows[z]["mass_in_remnants"] for z in zs],
        [rows[z]["unprocessed_mass_in_winds"] for z in zs],
        mass_range,
    )


def _karakas_initial(path: Path) -> dict[str, float]:
    """The initial composition of a Karakas surface file, normalised to sum to one (CHEMPY's parser)."""
    columns = ("log_e", "xh", "xfe", "xo", "xi")
    s = np.genfromtxt(_require(path), dtype=[("el", "U4"), ("z", int)] + [(c, float) for c in columns])
    p_rows = np.flatnonzero(s["el"] == "p")
    if len(p_rows) < 3:
        raise ValueError(f"{path}: not a Karakas (2016) surface file (CHEMPY's parser needs a third 'p' row)")
    n = p_rows[2] - 1  # the rows before the third 'p' less one (CHEMPY's cut)
    names = _symbols(list(s["el"][:n]))
    xi = s["xi"][:n]
    return dict(zip(names, xi / xi.sum()))


def karakas16_net(directory: str | Path, mass_range=(1.0, 8.0)) -> YieldTable:
    """AGB net yields of Karakas & Lugaro (2016), CHEMPY's ``Karakas16_net``."""
    directory = Path(directory) / "Karakas2016"
    masses, fractions, remnant, unprocessed = [], [], [], []
    for z in KARAKAS_METALLICITIES:
        tag = str(z)[2:]
        if z == 0.001:  # Fishlock et al. 2014: another column layout, element names as symbols
            cols = ["el", "z", "yield", "mass_lost", "mass_0", "xi", "x0", "log_ratio"]
        else:
            cols = ["el", "z", "log_e", "xh", "xfe", "xi", "massi"]
        dtype = [(c, "U4" if c == "el" else int if c == "z" else float) for c in cols]
        path = _require(directory / f"yield_z{tag}.dat")
        y = np.genfromtxt(path, dtype=dtype)
        first = "H" if z == 0.001 else "p"
        starts = np.flatnonzero(y["el"] == first)
        if len(starts) < (2 if z == 0.001 else 3):
            raise ValueError(f"{path}: not a Karakas (2016) yield file (no second model block)")
        n = starts[1] if z == 0.001 else starts[2]  # one model's rows (CHEMPY's cut)
        names = list(y["el"][:n]) if z == 0.001 else _symbols(list(y["el"][:n]))
        surface = directory / f"surf_z{tag}.dat"
        initial = _karakas_initial(surface)
        missing = [e for e in names if e not in initial]
        if missing:
            raise ValueError(f"{surface}: no initial abundance of {missing}, which {path.name} lists")
        m, rem = (np.asarray(v, float) for v in KARAKAS_MASSES_REMNANTS[z])
        if len(y) < n * len(m):
            raise ValueError(f"{path}: {len(y)} rows, but CHEMPY reads {len(m)} models of {n} elements")
        xi = y["xi"][: n * len(m)].reshape(len(m), n)  # (mass, element)
        xi = xi / xi.sum(axis=1, keepdims=True)
        keep = (m >= mass_range[0]) & (m <= mass_range[1])
        masses.append(m[keep])
        fractions.append({e: xi[keep, i] - initial[e] for i, e in enumerate(names)})
        remnant.append(rem[keep] / m[keep])
        unprocessed.append(1.0 - rem[keep] / m[keep])
    return _table(KARAKAS_METALLICITIES, masses, fractions, remnant, unprocessed, mass_range)


def thielemann2003(directory: str | Path) -> tuple[np.ndarray, float]:
    """SN Ia yields of Thielemann et al. (2003): (M☉ of each traced element per event, H removed per event).

    CHEMPY stores the yields per unit mass (divided by 1.37409) and multiplies them by the mass per event,
    -mass_in_remnants (the same 1.37409); the single-degenerate accretion removes M_Ia - 0.3 * 2.156 of H."""
    t = np.genfromtxt(_require(Path(directory) / "Thielemann2003" / "0.02.txt"), names=True, dtype=None)
    m_ia = -float(t["mass_in_remnants"])
    per_event = np.array([float(t[e]) / THIELEMANN_MASS * m_ia if e in t.dtype.names else 0.0 for e in ELEMENTS])
    return per_event, m_ia - SNIA_RETAINED_MASS


def load_study_alternative_yields(directory: str | Path | None = None) -> YieldSet:
    """The study's alternative set (Nomoto+13 SN II, Karakas & Lugaro 16 AGB, Thielemann+03 SN Ia) as CHEMPY
    processes it, from ``directory`` in CHEMPY's ``input/yields`` layout (default: the copy in galaxy-sbi)."""
    from .packaged import alternative_yields_dir

    directory = Path(directory) if directory is not None else alternative_yields_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"yield directory {directory} not found")
    snia, hydrogen_removed = thielemann2003(directory)
    return YieldSet(
        nomoto2013_net(directory),
        karakas16_net(directory),
        snia,
        hydrogen_removed,
        name="alternative",
        description="the study's alternative set as CHEMPY processes it: SN II Nomoto et al. 2013 (Nomoto2013_net), "
        "AGB Karakas & Lugaro 2016 (Karakas16_net; surf_z007/z014 rebuilt), SN Ia Thielemann et al. 2003",
    )

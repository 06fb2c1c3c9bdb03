"""Dequantisation of grid-valued parameters (any theta; used by the spectra graph's [M/H], [alpha/Fe], t0, tau).

Parameters that the simulations take on a grid are spread uniformly over their grid cell for training
(:func:`dequantise`), so the flow learns a density that the data can pin (the cell) rather than a smoothed spike
of arbitrary width. Calibration on a test set with grid-valued truths then uses the same spreading of the truth
(the randomised PIT of a discrete variable, Czado, Gneiting & Held 2009): for a posterior that puts the right mass
on each cell the credibility levels are exactly uniform.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def grid_cells(grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted grid values and the (low, high) edges of their cells: half-way to the neighbours; an end cell
    reaches as far out as it reaches in (a one-value grid gets a zero-width cell)."""
    g = np.unique(np.asarray(grid, float))
    mid = 0.5 * (g[1:] + g[:-1])
    if len(g) == 1:
        return g, g.copy(), g.copy()
    low = np.concatenate([[g[0] - (mid[0] - g[0])], mid])
    high = np.concatenate([mid, [g[-1] + (g[-1] - mid[-1])]])
    return g, low, high


#: values closer than this fraction of the grid's range are one grid node (grid_values merges, dequantise matches)
GRID_REL_TOL = 1e-4


def grid_values(values, rel_tol: float = GRID_REL_TOL, name: str = "these values") -> np.ndarray:
    """The grid a set of values lies on: sorted distinct values, values closer than ``rel_tol`` of the range merged
    (their mean), so fitted values (linexp's t0 and tau, exact to ~1e-5) find their node. Refuses values that are
    not grid-valued (more than half of them distinct)."""
    v = np.sort(np.asarray(values, float).ravel())
    tol = rel_tol * max(float(np.ptp(v)), 1e-12)
    breaks = np.flatnonzero(np.diff(v) > tol) + 1
    grid = np.array([c.mean() for c in np.split(v, breaks)])
    if len(grid) > max(len(v) // 2, 1):
        raise ValueError(
            f"dequantise: {name} takes {len(grid)} distinct values among {len(v)}, not a grid; "
            f"leave it out of npe.dequantise"
        )
    return grid


def dequantise(values, grid, rng, atol: float | None = None, strict: bool = True) -> np.ndarray:
    """Each grid value spread uniformly over its cell (:func:`grid_cells`); any shape. A value off the grid is
    refused (``strict``) or spread over a cell of its nearest node's width centred on itself (a test case whose
    node the training set never took)."""
    values = np.asarray(values, float)
    g, low, high = grid_cells(grid)
    if atol is None:  # what grid_values merges
        atol = GRID_REL_TOL * max(float(np.ptp(g)), 1e-12) + 1e-12
    idx = np.clip(np.searchsorted(g, values), 0, len(g) - 1)
    idx = np.where(np.abs(g[np.maximum(idx - 1, 0)] - values) < np.abs(g[idx] - values), np.maximum(idx - 1, 0), idx)
    off = np.abs(g[idx] - values) > atol
    if off.any() and strict:
        raise ValueError(
            f"dequantise: {int(off.sum())} values are not on the grid {g.tolist()} (e.g. {values[off].ravel()[0]:.4g})"
        )
    if off.any():
        log.warning(
            "dequantise: %d values off the training grid, each spread over its nearest cell's width", int(off.sum())
        )
    width = high[idx] - low[idx]
    start = np.where(off, values - 0.5 * width, low[idx])
    return start + width * rng.uniform(size=values.shape)

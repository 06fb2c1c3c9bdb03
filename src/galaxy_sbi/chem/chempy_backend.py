"""Optional backend that runs real CHEMPY (the ChempyMulti fork) behind the simulator's interface.

CHEMPY is not on PyPI (the PyPI package ``chempy`` is an unrelated chemistry library). Install the
fork used by the study from its repository, e.g.::

    pip install git+https://github.com/bGuenes/ChempyMulti.git

It runs one parameter set at a time (~0.5-1 s each); :func:`simulate_chempy` loops over the rows,
optionally in several processes. Use it to validate :func:`galaxy_sbi.chem.simulate` on new yield
sets or parameter ranges.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .gce import PARAMETER_NAMES
from .yields import ELEMENTS

INSTALL_HINT = (
    "real CHEMPY is not installed. It is not on PyPI (PyPI 'chempy' is an unrelated package); install "
    "the ChempyMulti fork used by the study with\n"
    "    pip install git+https://github.com/bGuenes/ChempyMulti.git\n"
    "or use galaxy_sbi.chem.simulate, the vectorised re-implementation."
)


def _import_chempy():
    """Return (single_timestep_chempy, ModelParameters) or raise an ImportError with install help."""
    try:
        from Chempy.cem_function import single_timestep_chempy
        from Chempy.parameter import ModelParameters
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return single_timestep_chempy, ModelParameters


def chempy_available() -> bool:
    """Whether real CHEMPY (``Chempy`` package with ``single_timestep_chempy``) can be imported."""
    try:
        _import_chempy()
    except ImportError:
        return False
    return True


def _one(args):
    row, model_parameters = args
    single_timestep_chempy, ModelParameters = _import_chempy()
    # a fresh copy per run: single_timestep_chempy leaves end / time_steps / total_mass changed after a rejected
    # run, which would shift every later run of a shared instance
    a = copy.deepcopy(model_parameters) if model_parameters is not None else ModelParameters()
    try:
        result = single_timestep_chempy((np.asarray(row, dtype=np.float64), a))
    except AssertionError:  # CHEMPY asserts on birth times before t_end - 13 Gyr
        return None
    if isinstance(result, float) and math.isinf(result):
        return None
    values, names = result if isinstance(result, tuple) and len(result) == 2 else (result, ELEMENTS)
    values = np.asarray(values, dtype=np.float64)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if list(names) != list(ELEMENTS):  # reorder to the simulator's element order
        values = values[[names.index(e) for e in ELEMENTS]]
    return values


def simulate_chempy(theta, *, model_parameters=None, n_jobs: int = 1):
    """Real-CHEMPY counterpart of :func:`galaxy_sbi.chem.simulate` (same inputs and outputs).

    Parameters
    ----------
    theta : (N, 6) array with columns :data:`~galaxy_sbi.chem.PARAMETER_NAMES`.
    model_parameters : a ``Chempy.parameter.ModelParameters`` instance (default: a fresh one,
        i.e. CHEMPY's default configuration with the TNG yields in the ChempyMulti fork).
    n_jobs : number of worker processes.

    Returns ``(abundances (N, 9) with NaN rows where rejected, valid (N,) bool)``.
    Raises ImportError with installation instructions when CHEMPY is missing.
    """
    _import_chempy()
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if theta.shape[1] != len(PARAMETER_NAMES):
        raise ValueError(f"theta must have shape (N, {len(PARAMETER_NAMES)}); got {theta.shape}")
    jobs = [(row, model_parameters) for row in theta]
    if n_jobs > 1:
        from multiprocessing import Pool

        with Pool(n_jobs) as pool:
            results = pool.map(_one, jobs)
    else:
        results = [_one(j) for j in jobs]
    out = np.full((len(theta), len(ELEMENTS)), np.nan)
    valid = np.zeros(len(theta), dtype=bool)
    for i, r in enumerate(results):
        if r is not None and np.all(np.isfinite(r)):
            out[i], valid[i] = r, True
    return out, valid

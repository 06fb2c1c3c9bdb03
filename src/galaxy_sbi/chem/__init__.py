"""Chemical-evolution simulator (a vectorised CHEMPY equivalent) and its yield providers.

>>> from galaxy_sbi.chem import load_chempy_yields, simulate
>>> yields = load_chempy_yields("path/to/Chempy/input/yields/TNG")      # doctest: +SKIP
>>> abundances, valid = simulate(theta, yields)                          # doctest: +SKIP
"""

from .gce import (
    ATOMIC_MASS,
    OUTPUT_LABELS,
    PARAMETER_NAMES,
    SOLAR_EPS,
    T_END,
    GCERun,
    imf_mass_fractions,
    lifetime_gyr,
    run_model,
    simulate,
    ssp_feedback_table,
)
from .yields import ELEMENTS, VICE_PRESETS, YieldSet, YieldTable, load_chempy_yields, load_vice_yields

__all__ = [
    "ATOMIC_MASS",
    "ELEMENTS",
    "GCERun",
    "OUTPUT_LABELS",
    "PARAMETER_NAMES",
    "SOLAR_EPS",
    "T_END",
    "VICE_PRESETS",
    "YieldSet",
    "YieldTable",
    "imf_mass_fractions",
    "lifetime_gyr",
    "load_chempy_yields",
    "load_vice_yields",
    "run_model",
    "simulate",
    "ssp_feedback_table",
    "simulate_chempy",
]


def simulate_chempy(theta, **kwargs):
    """Run real CHEMPY (ChempyMulti) behind the same interface; see :mod:`galaxy_sbi.chem.chempy_backend`."""
    from .chempy_backend import simulate_chempy as _sim

    return _sim(theta, **kwargs)

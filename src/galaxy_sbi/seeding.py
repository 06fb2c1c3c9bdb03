"""One seed in the config; every random step derives its own generator from it by name (both rule graphs)."""

from __future__ import annotations

import zlib

import numpy as np


def derived_seed(seed: int, *keys: str) -> np.random.SeedSequence:
    """A SeedSequence for one random step: the master seed plus stable names (crc32, not hash(), which Python
    salts per process), e.g. ``derived_seed(seed, "chem_simulate", "3")``."""
    return np.random.SeedSequence([int(seed), *(zlib.crc32(str(k).encode()) for k in keys)])


def derived_rng(seed: int, *keys: str) -> np.random.Generator:
    """``numpy`` generator of :func:`derived_seed`."""
    return np.random.default_rng(derived_seed(seed, *keys))

"""Priors of the CHEMPY study (Guenes et al.): Gaussian population priors and the NPE's uniform +-k sigma box.

Parameters, in :data:`galaxy_sbi.chem.PARAMETER_NAMES` order: alpha_IMF, log10_N_Ia (global: shared by all
stars of a galaxy), log10_SFE, log10_SFR_scale, outflow_fraction, birth_time (local: one set per star).

* population prior (how stars of a galaxy are drawn, and the study's physical prior): N(mean, sigma) for
  the first five (outflow fraction clipped to [0, 1]), birth time U(t_min, t_max) Gyr;
* training prior (the simulator's training/validation sets and the NPE, as in the study): uniform over
  mean +- width * sigma (width 5), outflow fraction restricted to [0, 1], birth time U(t_min, t_max).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

N_GLOBAL = 2  # alpha_IMF, log10_N_Ia


@dataclass(frozen=True)
class Priors:
    mean: np.ndarray  # (5,)
    sigma: np.ndarray  # (5,)
    birth_time: tuple[float, float]
    width: float  # half-width of the uniform box in sigmas

    @classmethod
    def from_config(cls, cfg: Mapping) -> Priors:
        return cls(
            np.asarray(cfg["mean"], float),
            np.asarray(cfg["sigma"], float),
            tuple(cfg["birth_time_gyr"]),
            float(cfg["uniform_width_sigma"]),
        )

    @property
    def low(self) -> np.ndarray:
        lo = np.append(self.mean - self.width * self.sigma, self.birth_time[0])
        lo[4] = max(lo[4], 0.0)
        return lo

    @property
    def high(self) -> np.ndarray:
        hi = np.append(self.mean + self.width * self.sigma, self.birth_time[1])
        hi[4] = min(hi[4], 1.0)
        return hi

    def draw_population(self, n: int, rng: np.random.Generator, global_values=None) -> np.ndarray:
        """(n, 6) stars from the population prior; ``global_values`` (2,) fixes alpha_IMF, log10_N_Ia."""
        theta = np.empty((n, 6))
        theta[:, :5] = rng.normal(self.mean, self.sigma, (n, 5))
        theta[:, 4] = theta[:, 4].clip(0.0, 1.0)
        theta[:, 5] = rng.uniform(*self.birth_time, n)
        if global_values is not None:
            theta[:, :N_GLOBAL] = np.asarray(global_values, float)
        # stay inside the training box (5 sigma: a clip that essentially never acts)
        return np.clip(theta, self.low, self.high)

    def draw_uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 6) draws from the training box."""
        return rng.uniform(self.low, self.high, (n, 6))

    def box(self, dims=slice(None)):
        """sbi BoxUniform over the training box (all six parameters, or ``dims``)."""
        from sbi.utils import BoxUniform

        return BoxUniform(
            torch.as_tensor(self.low[dims], dtype=torch.float32), torch.as_tensor(self.high[dims], dtype=torch.float32)
        )

    def global_log_prior(self, grid: np.ndarray) -> np.ndarray:
        """Gaussian log prior of (alpha_IMF, log10_N_Ia) at ``grid`` (..., 2), up to a constant."""
        z = (np.asarray(grid) - self.mean[:N_GLOBAL]) / self.sigma[:N_GLOBAL]
        return -0.5 * (z**2).sum(-1)

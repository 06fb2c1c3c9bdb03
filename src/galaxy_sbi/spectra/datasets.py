"""Training data for the encoder: every cell of one SFH family in one float32 array, split by the stored split.

Memory: the flux of a family is read once into a single preallocated (n_spectra, n_wavelength) float32
array (no per-cell copies). The default config is ~9k + 6.5k spectra of 4300 pixels (150 + 110 MB); the
paper config is 450k x 4300 x 4 B = 7.7 GB per family, which a cluster GPU node holds comfortably: the
training rule asks for `family_memory_mb` (workflow/rules/common.smk) (twice the array plus 3 GB) from the scheduler. Reading lazily
from the compressed netCDF chunks would cost a decompression per batch and a block-shuffled sampler for no
gain at these sizes, so it is not implemented.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError

log = logging.getLogger(__name__)


@dataclass
class FamilyData:
    """All spectra of one family (rows in cell order, then SFH index)."""

    flux: np.ndarray  # (n, n_wavelength) float32
    labels: np.ndarray  # (n, n_parameter) float32
    split: np.ndarray  # (n,) str
    sfh_index: np.ndarray  # (n,) int: the SFH's index in results/sfh/{family}.nc (same in every cell)
    cell: np.ndarray  # (n,) str
    metallicity: np.ndarray  # (n,) float
    alpha: np.ndarray | None  # (n,) float, None without an [alpha/Fe] axis
    wavelength: np.ndarray  # (n_wavelength,)
    parameters: list[str]
    family: str
    attrs: dict

    def __len__(self) -> int:
        return len(self.flux)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def load_family(paths: Sequence[str | Path]) -> FamilyData:
    """Read every cube of one family into memory; refuses cubes whose grids or parameters disagree."""
    if not paths:
        raise InputError("no spectra cubes given")
    sizes, first = [], None
    for path in paths:
        with xr.open_dataset(path) as ds:
            sizes.append(ds.sizes["sample"])
            if first is None:
                first = (ds["wavelength"].values.copy(), [str(p) for p in ds["parameter"].values], dict(ds.attrs))
            else:
                if (
                    not np.array_equal(ds["wavelength"].values, first[0])
                    or [str(p) for p in ds["parameter"].values] != first[1]
                ):
                    raise InputError(f"{path}: wavelength grid or label parameters differ from {paths[0]}")
    wavelength, parameters, attrs = first
    n, n_wave = int(sum(sizes)), len(wavelength)
    flux = np.empty((n, n_wave), np.float32)
    labels = np.empty((n, len(parameters)), np.float32)
    split = np.empty(n, dtype=object)
    sfh_index = np.empty(n, np.int64)
    cell = np.empty(n, dtype=object)
    metallicity = np.empty(n)
    alpha = np.full(n, np.nan)
    start = 0
    for path, size in zip(paths, sizes):
        with xr.open_dataset(path) as ds:
            rows = slice(start, start + size)
            flux[rows] = ds["flux"].values
            labels[rows] = ds["labels"].values
            split[rows] = ds["split"].values.astype(str)
            sfh_index[rows] = ds["sample"].values
            cell[rows] = ds.attrs.get("cell", Path(path).stem)
            metallicity[rows] = float(ds["metallicity"])
            if "alpha" in ds.coords:
                alpha[rows] = float(ds["alpha"])
        start += size
    if not np.all(np.isfinite(flux)):
        raise InputError(f"non-finite flux in the cubes of {attrs.get('family', '?')}")
    log.info("loaded %d spectra x %d pixels from %d cubes (%.0f MB)", n, n_wave, len(paths), flux.nbytes / 2**20)
    return FamilyData(
        flux=flux,
        labels=labels,
        split=split.astype(str),
        sfh_index=sfh_index,
        cell=cell.astype(str),
        metallicity=metallicity,
        alpha=None if np.all(np.isnan(alpha)) else alpha,
        wavelength=wavelength,
        parameters=parameters,
        family=str(attrs.get("family", "?")),
        attrs=attrs,
    )

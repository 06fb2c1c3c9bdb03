"""netCDF products: provenance attributes and compressed, chunked writing."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import xarray as xr

from . import __version__
from .config import config_hash

_PROVENANCE_PACKAGES = ("numpy", "xarray", "netCDF4", "astropy", "torch", "fastar-astro", "milespy")


def package_versions(packages=_PROVENANCE_PACKAGES) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def provenance_attrs(config_section: Any, stage: str) -> dict[str, str]:
    """Global attributes every product carries, so `ncdump -h` tells a stranger where it came from."""
    return {
        "producer": f"galaxy-sbi {__version__} ({stage})",
        "config_hash": config_hash(config_section),
        "package_versions": package_versions(),
        "python": platform.python_version(),
        "Conventions": "CF-1.8",
    }


def write_netcdf(
    ds: xr.Dataset, path: str | Path, chunk_sizes: dict[str, int] | None = None, complevel: int = 4
) -> Path:
    """Write float variables chunked (chunk_sizes per dim, whole dims otherwise) and zlib-compressed.

    complevel 0 writes uncompressed: on large spectra cubes level 4 costs ~18x the write time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {}
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f" and var.ndim > 0:
            chunks = tuple(min((chunk_sizes or {}).get(d, n), n) for d, n in zip(var.dims, var.shape))
            encoding[name] = {"zlib": complevel > 0, "chunksizes": chunks}
            if complevel > 0:
                encoding[name]["complevel"] = complevel
    tmp = path.with_name(path.name + ".part")
    ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    tmp.replace(path)  # never leave a half-written product under the final name
    return path

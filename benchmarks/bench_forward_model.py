"""Throughput of the forward model (spectra per second): folded fast path vs a per-spectrum loop.

Usage::

    python benchmarks/bench_forward_model.py [--ssp results/ssp/ssp_grid.nc] [--cells 4] [--workers 2]

SFHs: the seed's full linear-exponential grid (101 x 101 = 10,201 SFHs on the 1401-node 0.01 Gyr grid, the
larger of the two families' time grids). SSPs: one cell of `--ssp` when the file exists, else a synthetic
cube with the MILES shape (53 ages x 4300 pixels; only the compression ratio depends on the content).

Measured in one run, on this machine:
- naive: the seed's recipe done one spectrum at a time -- SSPs interpolated once per cell onto the SFH's
  1400 bin ages, then for each spectrum the mass-weighted sum over the bins and the median normalisation;
- fast, compute only: galaxy_sbi.spectra.synth (weights folded onto the 53 native ages, one float64 matrix
  product per block, median via partition), one thread;
- fast, end to end: what a `spectra_cell` job does (build_cell + write_cube to netCDF on local disk), for
  `--cells` cells run by `--workers` processes side by side as `snakemake --cores 2` would, for each zlib
  level in --complevels. Throughput and the projected time for the paper-scale 450,000 spectra (10,000 SFHs x
  45 cells) include the netCDF writing.

Writes benchmarks/results/forward_model.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per process: workers run side by side
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from galaxy_sbi.benchmarking import cpu_model  # noqa: E402
from galaxy_sbi.spectra import sfh as sfh_mod  # noqa: E402
from galaxy_sbi.spectra import synth  # noqa: E402
from galaxy_sbi.spectra.ssp import MILES_WAVELENGTH, ssp_dataset  # noqa: E402

PAPER_SPECTRA = 450_000
PARAMETRIC = {
    "time_gyr": {"start": 0.0, "stop": 14.0, "step": 0.01},
    "t0_gyr": {"start": 0.0, "stop": 5.0, "step": 0.05},
    "log10_tau_gyr": {"start": -0.5, "stop": 0.7, "step": 0.012},
    "thin": 1,
}
MILES_AGES = [
    0.03,
    0.04,
    0.05,
    0.06,
    0.07,
    0.08,
    0.09,
    0.10,
    0.15,
    0.20,
    0.25,
    0.30,
    0.35,
    0.40,
    0.45,
    0.50,
    0.60,
    0.70,
    0.80,
    0.90,
    1.00,
    1.25,
    1.50,
    1.75,
    2.00,
    2.25,
    2.50,
    2.75,
    3.00,
    3.25,
    3.50,
    3.75,
    4.00,
    4.50,
    5.00,
    5.50,
    6.00,
    6.50,
    7.00,
    7.50,
    8.00,
    8.50,
    9.00,
    9.50,
    10.00,
    10.50,
    11.00,
    11.50,
    12.00,
    12.50,
    13.00,
    13.50,
    14.00,
]


def synthetic_grid() -> xr.Dataset:
    """SSP-like spectra: power-law continua and 300 absorption lines whose depth grows with age."""
    rng = np.random.default_rng(0)
    ages = np.asarray(MILES_AGES)
    wave = MILES_WAVELENGTH
    centres, depth, width = rng.uniform(3540, 7410, 300), rng.uniform(0, 0.5, 300), rng.uniform(1, 5, 300)
    flux = np.empty((1, ages.size, wave.size))
    for k, age in enumerate(ages):
        absorb = np.ones_like(wave)
        strength = np.log10(age / 0.02) / np.log10(14 / 0.02)
        for c, d, w in zip(centres, depth * strength, width):
            absorb *= 1 - d * np.exp(-0.5 * ((wave - c) / w) ** 2)
        flux[0, k] = 1e-4 / age**0.8 * (wave / 5000) ** (-2 + 3 * strength) * absorb
    return ssp_dataset(flux, ages, [0.0], wave, attrs={"source": "synthetic (benchmark)"})


def load_grid(path: Path | None) -> tuple[xr.Dataset, str]:
    if path is not None and path.exists():
        with xr.open_dataset(path) as grid:
            grid = grid.load()
        return grid, f"{path} ({grid.attrs.get('source', '?')})"
    return synthetic_grid(), "synthetic MILES-shaped cube (no SSP grid file found)"


def first_cells(grid: xr.Dataset, n: int) -> list[str]:
    alphas = grid["alpha"].values if "alpha" in grid.dims else [None]
    cells = [synth.cell_name(m, a) for m in grid.metallicity.values for a in alphas]
    return [cells[i % len(cells)] for i in range(n)]


def naive_loop(sfh: xr.Dataset, ssps: np.ndarray, native_ages: np.ndarray, n: int) -> tuple[float, np.ndarray]:
    """The seed's recipe, one spectrum at a time; returns (seconds per spectrum, the spectra)."""
    from scipy.interpolate import interp1d

    time_grid = sfh.time.values
    t_obs = float(sfh.attrs["t_obs_gyr"])
    cum = sfh.cumulative_mass_fraction.values[:n]
    start = time.perf_counter()
    ages = np.clip(synth.bin_ages(time_grid, t_obs), native_ages[0], native_ages[-1])
    ssp_fine = interp1d(native_ages, ssps, axis=0)(ages)  # once per cell: SSPs on the 1400 bin ages
    out = np.empty((n, ssps.shape[1]), np.float32)
    for i in range(n):
        dm = np.diff(cum[i])
        spectrum = dm @ ssp_fine
        out[i] = spectrum / np.median(spectrum)
    return (time.perf_counter() - start) / n, out


def _cell_job(args) -> float:
    sfh_path, grid_path, cell, out_dir, complevel, spectra_cfg = args
    start = time.perf_counter()
    with xr.open_dataset(sfh_path) as sfh, xr.open_dataset(grid_path) as grid:
        cube = synth.build_cell(sfh.load(), grid.load(), cell, spectra_cfg, seed=1)
    synth.write_cube(cube, Path(out_dir) / f"{cell}_{complevel}.nc", spectra_cfg["chunk_samples"], complevel)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ssp", type=Path, default=ROOT / "results/ssp/ssp_grid.nc")
    parser.add_argument("--cells", type=int, default=4, help="cells written per compression level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--complevels", type=int, nargs="+", default=[0, 1, 4])
    parser.add_argument("--naive", type=int, default=300, help="spectra in the naive loop")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder on the disk to measure")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/forward_model.json")
    args = parser.parse_args()

    grid, grid_source = load_grid(args.ssp)
    sfh = sfh_mod.make_parametric(PARAMETRIC, 1e10)
    n_sfh = sfh.sizes["sfh"]
    cell = first_cells(grid, 1)[0]
    metallicity, alpha = synth.parse_cell(cell)
    ssps = synth.cell_ssps(grid, metallicity, alpha)
    S, native_ages = ssps.values, ssps.age.values
    spectra_cfg = {
        "split": {"train": 0.8, "validation": 0.1, "test": 0.1},
        "normalisation": "median",
        "age_edges": "clamp",
        "chunk_samples": 1024,
        "complevel": 0,
    }

    # naive loop (one thread)
    naive_s, naive_out = naive_loop(sfh, S, native_ages, args.naive)
    # fast, compute only (one thread): weights + product + normalisation for all 10,201 SFHs
    start = time.perf_counter()
    W, _, _ = synth.native_weights(sfh.time.values, sfh.cumulative_mass_fraction.values, native_ages, 14.0)
    t_weights = time.perf_counter() - start
    flux, _ = synth.forward(W, S, "median", 1e10)
    t_fast = time.perf_counter() - start
    agree = float(np.max(np.abs(flux[: args.naive] / naive_out - 1)))

    # fast, end to end: cells written by side-by-side workers, per compression level
    scratch = Path(tempfile.mkdtemp(prefix="bench-forward-", dir=args.tmp))
    results = {}
    try:
        sfh_path, grid_path = scratch / "sfh.nc", scratch / "grid.nc"
        sfh.to_netcdf(sfh_path)
        grid.to_netcdf(grid_path)
        cells = first_cells(grid, args.cells)
        for complevel in args.complevels:
            jobs = [(sfh_path, grid_path, c, scratch, complevel, spectra_cfg) for c in cells]
            start = time.perf_counter()
            with mp.get_context("fork").Pool(args.workers) as pool:
                per_cell = pool.map(_cell_job, jobs)
            wall = time.perf_counter() - start
            size = sum((scratch / f"{c}_{complevel}.nc").stat().st_size for c in cells) / len(cells)
            rate = len(cells) * n_sfh / wall
            results[f"complevel_{complevel}"] = {
                "cells": len(cells),
                "spectra": len(cells) * n_sfh,
                "wall_s": round(wall, 2),
                "seconds_per_cell_job": round(float(np.mean(per_cell)), 2),
                "spectra_per_s": round(rate, 1),
                "bytes_per_spectrum": round(size / n_sfh, 1),
                "projected_450k_s": round(PAPER_SPECTRA / rate, 1),
                "projected_450k_GB": round(PAPER_SPECTRA * size / n_sfh / 1e9, 2),
            }
            for c in cells:
                (scratch / f"{c}_{complevel}.nc").unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "benchmark": "forward model: SFHs x SSPs -> median-normalised float32 spectra",
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "ssp": grid_source,
        "sfh_set": f"parametric linear-exponential grid, {n_sfh} SFHs x {sfh.sizes['time']} time nodes",
        "pixels": int(S.shape[1]),
        "native_ages": int(S.shape[0]),
        "naive_loop": {
            "what": "seed's recipe per spectrum: SSPs interpolated once per cell on the 1400 bin ages, then "
            "per spectrum sum_j dM_j SSP_j and the median (1 thread)",
            "spectra": args.naive,
            "spectra_per_s": round(1 / naive_s, 1),
            "projected_450k_s_one_core": round(PAPER_SPECTRA * naive_s, 1),
        },
        "fast_compute_only": {
            "what": "weights folded on the native ages (W = dM @ A), F = W @ S in float64 blocks, median by "
            "partition, float32 result (1 thread, no I/O)",
            "spectra": n_sfh,
            "weights_s": round(t_weights, 3),
            "total_s": round(t_fast, 3),
            "spectra_per_s": round(n_sfh / t_fast, 1),
            "speedup_vs_naive": round(naive_s * n_sfh / t_fast, 1),
            "max_relative_difference_vs_naive": agree,
        },
        "fast_end_to_end": {
            "what": f"spectra_cell jobs (build_cell + write_cube, netCDF4 on local disk), {args.workers} side by "
            "side, per zlib level; projected_450k_s is the paper-scale set (10,000 SFHs x 45 cells) at this rate",
            "workers": args.workers,
            **results,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

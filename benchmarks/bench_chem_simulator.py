"""Throughput of the vectorised CHEMPY-equivalent simulator (parameter sets per second).

Usage::

    python benchmarks/bench_chem_simulator.py [--threads 2] [--yields DIR] [--out FILE]

Draws parameter sets from the study's Gaussian priors (birth time U(1, 13.8) Gyr), runs
:func:`galaxy_sbi.chem.simulate` at batch sizes 1, 1e3 and 1e5 on CPU in float64 and writes
``benchmarks/results/chem_simulator.json``. Real CHEMPY needs ~0.5-1 s per set (1-2 sets/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from galaxy_sbi.benchmarking import cpu_model  # noqa: E402
from galaxy_sbi.chem import load_chempy_yields, load_vice_yields, simulate  # noqa: E402

MU = np.array([-2.3, -2.89, -0.3, 0.55, 0.5])
SIGMA = np.array([0.3, 0.3, 0.3, 0.1, 0.1])


def draw(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = np.empty((n, 6))
    theta[:, :5] = rng.normal(MU, SIGMA, (n, 5))
    theta[:, 4] = theta[:, 4].clip(0, 1)
    theta[:, 5] = rng.uniform(1.0, 13.8, n)
    return theta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--yields",
        type=Path,
        default=None,
        help="CHEMPY-format yield folder (default: ../shared/data/chem/yields/TNG, else VICE)",
    )
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 1000, 100000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chem_simulator.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shared = Path(os.environ.get("GALAXY_SBI_SHARED", ROOT.parent / "shared"))
    ydir = args.yields or shared / "data" / "chem" / "yields" / "TNG"
    if ydir.is_dir():
        yields, ysource = load_chempy_yields(ydir), f"CHEMPY TNG tables ({ydir})"
    else:
        yields, ysource = load_vice_yields("tng_like"), "VICE tng_like preset"
    kwargs = {} if args.chunk_size is None else {"chunk_size": args.chunk_size}

    simulate(draw(64, seed=99), yields, **kwargs)  # warm-up (caches, allocator)
    results = []
    for batch in args.batch_sizes:
        theta = draw(batch, seed=batch)
        repeats = max(1, min(50, int(2e4 // batch)))
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            _, valid = simulate(theta, yields, **kwargs)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        best, med = min(times), statistics.median(times)
        cpu_med = statistics.median(cpu)
        row = dict(
            batch_size=batch,
            repeats=repeats,
            median_seconds=med,
            best_seconds=best,
            sets_per_second_median=batch / med,
            sets_per_second_best=batch / best,
            sets_per_cpu_second=batch / cpu_med,
            sets_per_cpu_second_best=batch / min(cpu),
            median_cpu_seconds=cpu_med,
            # process CPU time / wall time: ~threads when the cores are free, ~1 when other
            # processes leave this one about a single core
            cpu_per_wall=cpu_med / med,
            accepted_fraction=float(np.mean(valid)),
            load_average_after=list(os.getloadavg()),
        )
        results.append(row)
        print(
            f"batch {batch:>7d}: {batch / med:12.1f} sets/s (median of {repeats}), best {batch / best:12.1f}, "
            f"{row['sets_per_cpu_second']:10.1f} sets per CPU-second, CPU/wall {cpu_med / med:.2f}, "
            f"load {os.getloadavg()[0]:.1f}"
        )

    report = dict(
        benchmark="galaxy_sbi.chem.simulate (vectorised CHEMPY-equivalent one-zone GCE model)",
        machine=dict(
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            cpu_model=cpu_model(),
            load_average_at_start=list(os.getloadavg()),
            python=platform.python_version(),
            torch_version=torch.__version__,
            numpy_version=np.__version__,
            platform=platform.platform(),
        ),
        dtype="float64",
        device="cpu",
        yields=ysource,
        prior="study Gaussian priors, birth time U(1, 13.8) Gyr",
        chunk_size=kwargs.get("chunk_size", "default"),
        results=results,
        chempy_reference="real CHEMPY (ChempyMulti): ~0.5-1 s per parameter set, i.e. ~1-2 sets/s",
        target_sets_per_second=1e4,
        note=(
            "The machine is shared: a 1-minute load average above the thread count means other "
            "processes competed for the cores and the wall-clock figures are lower bounds; "
            "sets_per_cpu_second (process CPU time) is less sensitive to that."
        ),
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

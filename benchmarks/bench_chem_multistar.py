"""Wall time of the multi-star inference of (alpha_IMF, log10_N_Ia) from 1,000 stars, per method.

Usage::

    python benchmarks/bench_chem_multistar.py [--threads 1] [--n-stars 1000] [--repeats 2] [--out FILE]

Needs the chem graph's outputs (``snakemake --cores 2 chem``): results/chem/npe_joint.pt, npe_global.pt,
systematics.json and datasets/simulator.npz. ``gaussian`` (the study's method): NPE samples of every star, a
Gaussian fit per star, the product; ``grid`` (calibrated): the zoomed grid posterior of the global NPE plus the
systematic kernel. Writes ``benchmarks/results/chem_multistar_timing.json`` (best of the repeats, the
load average and the CPU model: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from galaxy_sbi.benchmarking import cpu_model  # noqa: E402
from galaxy_sbi.chem import multistar  # noqa: E402
from galaxy_sbi.chem.priors import Priors  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-stars", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "chem")
    parser.add_argument("--joint", type=Path, default=None, help="joint NPE (default: RESULTS/npe_joint.pt)")
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chem_multistar_timing.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(args.config.read_text())["chem"]
    ms = cfg["multistar"]
    priors = Priors.from_config(cfg["priors"])
    combination = multistar.load_combination(
        args.joint or args.results / "npe_joint.pt",
        args.results / "npe_global.pt",
        args.results / "systematics.json",
        ms,
    )
    with np.load(args.results / "datasets" / "simulator.npz") as d:
        obs, truth = d["obs"][: args.n_stars], d["truth"]
    load_before = os.getloadavg()
    runs = []
    for _ in range(args.repeats):
        res = multistar.infer_vs_nstars(obs, [len(obs)], priors=priors, truth=truth, seed=0, **combination)
        runs.append(res["timing"])
        print(res["timing"], flush=True)
    row = res["rows"][-1]
    out = {
        "n_stars": len(obs),
        "seconds": {"gaussian": min(r["gaussian_s"] for r in runs), "grid": min(r["grid_s"] for r in runs)},
        "seconds_all_repeats": {"gaussian": [r["gaussian_s"] for r in runs], "grid": [r["grid_s"] for r in runs]},
        "npe_samples_per_star": ms["n_samples"],
        "n_grid": ms["n_grid"],
        "n_coarse": ms.get("n_coarse"),
        "estimates": {
            m: {"mean": np.asarray(row[f"{m}_mean"]).tolist(), "sd": np.asarray(row[f"{m}_sd"]).tolist()}
            for m in ("gaussian", "grid")
        },
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["seconds"]), "->", args.out)


if __name__ == "__main__":
    main()

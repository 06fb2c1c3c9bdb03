"""Does conditioning each star on its observed age help the galaxy's global parameters? (#17)

The TNG mock carries observed birth times (``obs_time`` +- ``obs_time_err``, median error 0.97 Gyr). The study's
Gaussian product can condition each star's joint-NPE posterior on its age (galaxy_sbi.chem.multistar.age_weights);
this measures the estimates with and without, on the TNG galaxy and on mock galaxies of our simulator whose
stars get ages with the TNG mock's errors. Needs a finished chemistry run (results/chem/npe_joint.pt, npe_global.pt,
systematics.json). Writes benchmarks/results/chem_observed_ages.json.

    python benchmarks/bench_chem_observed_ages.py --results results/chem --galaxies 20
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
from galaxy_sbi.chem.datasets import TNG_TRUTH, load_tng_mock, load_yields, simulated_galaxy  # noqa: E402
from galaxy_sbi.chem.packaged import PACKAGED  # noqa: E402
from galaxy_sbi.chem.priors import Priors  # noqa: E402


def estimates(obs, truth, ages, priors, combination, counts, seed):
    out = {}
    for label, birth in (("without_ages", None), ("with_ages", ages)):
        res = multistar.infer_vs_nstars(
            obs, counts, priors=priors, truth=truth, seed=seed, birth_time_obs=birth, **combination
        )
        out[label] = {
            str(r["n_stars"]): {
                "mean": np.asarray(r["gaussian_mean"]).tolist(),
                "sd": np.asarray(r["gaussian_sd"]).tolist(),
                "delta": (np.asarray(r["gaussian_mean"]) - truth).tolist(),
            }
            for r in res["rows"]
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "chem")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--galaxies", type=int, default=20)
    ap.add_argument("--stars", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chem_observed_ages.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(args.config.read_text())["chem"]
    priors = Priors.from_config(cfg["priors"])
    combination = multistar.load_combination(
        args.results / "npe_joint.pt",
        args.results / "npe_global.pt",
        args.results / "systematics.json",
        cfg["multistar"],
    )
    tng = load_tng_mock(PACKAGED)
    truth = np.array(TNG_TRUTH)
    result = {"tng_galaxy": estimates(tng["obs"], truth, tng["birth_time_obs"], priors, combination, args.stars, 0)}
    # mock galaxies of our simulator: each star's age error drawn from the TNG mock's errors
    rng = np.random.default_rng(17)
    yields = load_yields(cfg["yields"])
    errors = tng["birth_time_obs"][:, 1]
    mocks = []
    for g in range(args.galaxies):
        truth = np.clip(rng.normal(priors.mean[:2], priors.sigma[:2]), priors.low[:2], priors.high[:2])
        gal = simulated_galaxy(yields, priors, truth, max(args.stars), cfg["npe"]["noise_dex"], rng)
        err = rng.choice(errors, len(gal["obs"]))
        ages = np.column_stack([gal["theta"][:, 5] + rng.normal(0, err), err])
        mocks.append(estimates(gal["obs"], truth, ages, priors, combination, args.stars, int(rng.integers(2**31))))
        print(f"galaxy {g + 1}/{args.galaxies}", flush=True)
    summary = {}
    for label in ("without_ages", "with_ages"):
        for n in map(str, args.stars):
            d = np.array([m[label][n]["delta"] for m in mocks])
            s = np.array([m[label][n]["sd"] for m in mocks])
            summary[f"{label}/{n}"] = {
                "rms_delta": np.sqrt((d**2).mean(0)).tolist(),
                "mean_sd": s.mean(0).tolist(),
                "mean_abs_pull": np.abs(d / s).mean(0).tolist(),
            }
    result["mock_galaxies"] = {"n_galaxies": args.galaxies, "summary": summary, "per_galaxy": mocks}
    result["parameters"] = ["alpha_IMF", "log10_N_Ia"]
    result["machine"] = {
        "cpu": cpu_model(),
        "threads": args.threads,
        "load": os.getloadavg(),
        "python": platform.python_version(),
    }
    result["results_dir"] = str(args.results)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"tng_galaxy": result["tng_galaxy"], "summary": summary}, indent=1))


if __name__ == "__main__":
    main()

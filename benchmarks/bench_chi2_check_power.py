"""Does the observed galaxies' reconstruction check flag what it should, and only that? (#15)

Takes a finished `observed` run (results/observed/{galaxy}/prepared.nc and posterior.pt, the family's cubes, its
encoder, the SSP grid and SFHs). On the family's test spectra degraded like the galaxy (fresh noise draws): the
check's false-alarm rate (each spectrum judged against the others nearest it in posterior mean, as the galaxy is),
and the fraction flagged when a blue deficit is multiplied in (linear in wavelength from 0 at 4,500 A to A at
3,800 A, the misfit NGC 3073's posterior-mean reconstruction showed). Two statistics side by side: the stage's
(the best of n_chi2_draws posterior draws' spectra) and the one it replaced (the posterior-mean labels' spectrum,
against the whole test set and against the nearest spectra). Writes benchmarks/results/chi2_check_power.json.

    python benchmarks/bench_chi2_check_power.py --workdir . --galaxies NGC3073 NGC3522 --n-spectra 150
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from galaxy_sbi.benchmarking import cpu_model  # noqa: E402
from galaxy_sbi.spectra import matched  # noqa: E402
from galaxy_sbi.spectra.datasets import load_family  # noqa: E402
from galaxy_sbi.spectra.encoder import load_encoder  # noqa: E402
from galaxy_sbi.spectra.observed import degradation_for, load_prepared  # noqa: E402
from galaxy_sbi.spectra.posterior import SpectraPosterior  # noqa: E402
from galaxy_sbi.spectra.reconstruction import Reconstructor  # noqa: E402
from galaxy_sbi.spectra.synth import spectra_cells  # noqa: E402


def blue_deficit(flux, wavelength, amplitude, deg):
    """flux * (1 - A ramp below 4,500 A), normalised and filled again as the encoder sees a spectrum."""
    tilt = 1 - amplitude * np.clip((4500.0 - wavelength) / 700.0, 0, 1)
    f = flux * tilt
    f = f / np.median(f[:, deg.good], axis=1, keepdims=True)
    return np.where(deg.good, f, deg.fill).astype(np.float32)


def statistics(flux, encoder, post, rec, deg, error, n_draws, seed):
    """Per spectrum: posterior mean (N, d), best-of-draws chi^2 (N,), posterior-mean-labels chi^2 (N,)."""
    draws = post.sample_labels(encoder.encode(flux)[0], n_draws, seed=seed)
    means = draws.mean(0)
    best = matched.best_draw_chi2(flux, draws, post.names, rec, deg, error)
    mean_models = deg.noiseless(rec.from_labels(means, post.names))
    at_mean = np.array([matched.chi2_per_pixel(f, m, error, deg.good) for f, m in zip(flux, mean_models)])
    return means, best, at_mean


def galaxy_study(workdir: Path, galaxy: str, cfg: dict, n_spectra: int, amplitudes, seed: int) -> dict:
    family = cfg["observed"]["family"]
    model, false_alarm = cfg["observed"]["model"], cfg["observed"]["ood"]["false_alarm"]
    k, n_draws = model["n_chi2_reference"], model["n_chi2_draws"]
    prepared, _ = load_prepared(workdir / f"results/observed/{galaxy}/prepared.nc")
    data = load_family([workdir / f"results/spectra/{family}/{cell}.nc" for cell in spectra_cells(cfg)])
    encoder = load_encoder(workdir / f"results/encoder/{family}/encoder.ckpt")
    rec = Reconstructor.from_files(
        workdir / "results/ssp/ssp_grid.nc",
        workdir / f"results/sfh/{family}.nc",
        ends=cfg["evaluation"]["reconstruction"]["ends"],
    )
    post = SpectraPosterior.load(workdir / f"results/observed/{galaxy}/posterior.pt")
    deg = degradation_for(prepared, encoder)
    rng = np.random.default_rng(seed)
    test = data.indices("test")
    flux = deg.apply(data.flux[test], rng)
    t0 = time.perf_counter()
    means, best, at_mean = statistics(flux, encoder, post, rec, deg, prepared.error, n_draws, seed)
    reference_s = time.perf_counter() - t0
    out = {
        "n_test_spectra": int(len(test)),
        "n_draws": n_draws,
        "n_reference": k,
        "nominal_false_alarm": false_alarm,
        "reference_seconds": round(reference_s, 1),
        "test_spectra_chi2": {
            name: dict(zip(("p50", "p90", "p95", "p99"), np.percentile(c, [50, 90, 95, 99]).round(2).tolist()))
            for name, c in (("best_of_draws", best), ("posterior_mean_labels", at_mean))
        },
        "false_alarm_rate": {
            "best_of_draws_nearest": matched.chi2_false_alarm_rate(means, best, k, false_alarm),
            "posterior_mean_labels_nearest": matched.chi2_false_alarm_rate(means, at_mean, k, false_alarm),
        },
        "flagged_with_blue_deficit": [],
    }
    pick = rng.choice(len(test), min(n_spectra, len(test)), replace=False)
    whole_threshold = np.quantile(at_mean, 1 - false_alarm)
    for a in amplitudes:
        m, b, c = statistics(
            blue_deficit(flux[pick], prepared.wavelength, a, deg),
            encoder,
            post,
            rec,
            deg,
            prepared.error,
            n_draws,
            seed,
        )
        near = [matched.nearest_posterior_means(means, mi, k) for mi in m]
        out["flagged_with_blue_deficit"].append(
            {
                "amplitude": a,
                "n_spectra": int(len(pick)),
                "best_of_draws_nearest": float(
                    np.mean([bi > np.quantile(best[n], 1 - false_alarm) for bi, n in zip(b, near)])
                ),
                "posterior_mean_labels_nearest": float(
                    np.mean([ci > np.quantile(at_mean[n], 1 - false_alarm) for ci, n in zip(c, near)])
                ),
                "posterior_mean_labels_whole_test_set": float(np.mean(c > whole_threshold)),
            }
        )
        print(galaxy, out["flagged_with_blue_deficit"][-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--galaxies", nargs="+", default=["NGC3073", "NGC3522"])
    parser.add_argument("--n-spectra", type=int, default=150)
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/chi2_check_power.json")
    args = parser.parse_args()
    cfg = yaml.safe_load((args.workdir / "config/config.yaml").read_text())
    commit = subprocess.run(
        ["git", "-C", str(args.workdir), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "workdir_commit": commit,
        "galaxies": {
            g: galaxy_study(args.workdir, g, cfg, args.n_spectra, args.amplitudes, args.seed) for g in args.galaxies
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""Amortised inference speed on CPU: seconds per spectrum for encoding + 1000 posterior samples.

    python benchmarks/bench_amortised_inference.py [--family parametric] [--threads 2]

Needs results/encoder/{family}/encoder.ckpt, results/npe/{family}/posterior_linexp.pt (or --posterior) and one spectra cube; writes
benchmarks/results/amortised_inference.json. Single: one spectrum at a time (median of repeats); batched:
N spectra in one call. The paper quotes ~1e-4 s for the posterior samples of one spectrum.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.posterior import SpectraPosterior

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="parametric")
    ap.add_argument("--posterior", default=None, help="default results/npe/{family}/posterior_linexp.pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 100, 1000])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_encoder(ROOT / f"results/encoder/{args.family}/encoder.ckpt")
    post = SpectraPosterior.load(args.posterior or ROOT / f"results/npe/{args.family}/posterior_linexp.pt")
    cube = sorted((ROOT / f"results/spectra/{args.family}").glob("*.nc"))[0]
    with xr.open_dataset(cube) as ds:
        flux = ds["flux"].values
    res = {
        "family": args.family,
        "n_posterior_samples": args.samples,
        "device": "cpu",
        "threads": args.threads,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "npe": post.info.get("settings", {}),
        "results": [],
    }
    for n in args.batch:
        reps = 5 if n == 1 else 2
        f = np.resize(flux, (n, flux.shape[1]))
        t_enc = timed(lambda f=f: model.encode(f, batch_size=512), reps)
        z = model.encode(f, batch_size=512)[0]
        t_smp = timed(lambda z=z, n=n: post.sample_labels(z, args.samples, seed=0, batch=min(n, 100)), reps)
        row = {
            "n_spectra": n,
            "encode_s_per_spectrum": t_enc / n,
            "sample_s_per_spectrum": t_smp / n,
            "total_s_per_spectrum": (t_enc + t_smp) / n,
            "sample_s_per_posterior_sample": t_smp / n / args.samples,
        }
        res["results"].append(row)
        print(row, flush=True)
    out = ROOT / "benchmarks/results/amortised_inference.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print("->", out)


if __name__ == "__main__":
    main()

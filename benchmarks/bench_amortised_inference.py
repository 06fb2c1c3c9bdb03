"""Amortised inference speed on CPU: where ANPE's time per spectrum goes (encode, the flow's samples, the rest).

    python benchmarks/bench_amortised_inference.py WORKDIR [--family parametric] [--threads 1] [--samples 1000 100]

Needs WORKDIR/results/encoder/{family}/encoder.ckpt, the family's configured posterior in WORKDIR/results/npe/{family}/
and one spectra cube (a default run's workdir); writes benchmarks/results/amortised_inference_{family}.json.
Per batch size N (spectra in one call) and number of posterior samples: seconds per spectrum to encode, to sample
(SpectraPosterior.sample_labels: the flow's draws, the prior-box rejection, the labels), and the flow's draws alone
(``posterior_estimator.sample`` of exactly that many samples), and the in-prior acceptance. The posterior is told
S/N 20 and sigma 0 when it takes conditioning inputs. The baselines time ANPE one spectrum at a time on one core.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml

from galaxy_sbi.benchmarking import cpu_model
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
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--family", default="parametric")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, nargs="+", default=[1000, 100])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 20, 200])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = args.workdir / "results"
    model = load_encoder(results / f"encoder/{args.family}/encoder.ckpt")
    config = yaml.safe_load((args.workdir / "config/config.yaml").read_text())
    parametrisation = config["npe"]["parametrisation"][args.family]  # the configured one, as the baselines use
    post_file = results / f"npe/{args.family}/posterior_{parametrisation}.pt"
    post = SpectraPosterior.load(post_file)
    cube = sorted((results / f"spectra/{args.family}").glob("*.nc"))[0]
    with xr.open_dataset(cube) as ds:
        flux = ds["flux"].values
    est = post.posterior.posterior_estimator
    res = {
        "family": args.family,
        "posterior": str(post_file.relative_to(args.workdir)),
        "conditioning": post.conditioning,
        "threads": args.threads,
        "machine": cpu_model(),
        "torch": torch.__version__,
        "flow": {k: config["npe"][k] for k in ("model", "hidden_features", "num_transforms")},
        "results": [],
    }
    for n in args.batch:
        reps = 5 if n == 1 else 2
        f = np.resize(flux, (n, flux.shape[1]))
        t_enc = timed(lambda f=f: model.encode(f, batch_size=512), reps)
        x = post.inputs(model.encode(f, batch_size=512)[0], 20.0)
        xt = torch.as_tensor(x, dtype=torch.float32)
        for s in args.samples:
            t_smp = timed(lambda x=x, s=s: post.sample_labels(x, s, seed=0, batch=500), reps)
            with torch.no_grad():
                t_flow = timed(lambda xt=xt, s=s: est.sample((s,), condition=xt), reps)
                draws = est.sample((s,), condition=xt)
            low, high = post.posterior.prior.base_dist.low, post.posterior.prior.base_dist.high
            row = {
                "n_spectra": n,
                "n_samples": s,
                "encode_s_per_spectrum": t_enc / n,
                "sample_s_per_spectrum": t_smp / n,
                "total_s_per_spectrum": (t_enc + t_smp) / n,
                "flow_draws_s_per_spectrum": t_flow / n,
                "flow_s_per_draw": t_flow / n / s,
                "in_prior_fraction": float(((draws >= low) & (draws <= high)).all(-1).float().mean()),
            }
            res["results"].append(row)
            print(row, flush=True)
    out = ROOT / f"benchmarks/results/amortised_inference_{args.family}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print("->", out)


if __name__ == "__main__":
    main()

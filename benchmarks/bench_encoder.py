"""Training throughput of the encoder (spectra per second) on this machine, default and paper widths.

Usage::

    python benchmarks/bench_encoder.py [--threads 2] [--batches 40] [--paper-batches 4]

Each width (the `encoder:` sections of config/config.yaml and config/paper.yaml, merged as Snakemake would)
trains the EncoderModule for a number of batches of 4300-pixel spectra (synthetic smooth spectra: the
cost does not depend on the content) with the Lightning Trainer exactly as the encoder_train rule does
(optimizer, loss, gradient clipping), with augmentation as configured and with augmentation off. Reported:
spectra/s (after one warm-up batch), the projected time of one epoch over the training split of the default
family sizes (parametric 8788 and nonparametric 6500 spectra, 80 % train) and of the paper's 450,000-spectra
family (360,000 train), and the forward+backward time per batch.

Writes benchmarks/results/encoder_training.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def merged_settings(paper: bool) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    enc = copy.deepcopy(cfg["encoder"])
    if paper:
        enc.update(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["encoder"])
    return enc


def measure(settings: dict, n_batches: int, threads: int, augment: bool) -> dict:
    import lightning as L
    import torch

    from galaxy_sbi.spectra.encoder import EncoderModule, module_kwargs

    torch.set_num_threads(threads)
    settings = copy.deepcopy(settings)
    settings["augmentation"]["enabled"] = augment
    settings["lr_schedule"]["factor"] = 0  # no validation here: the plateau scheduler would have nothing to watch
    bs = settings["batch_size"]
    n = bs * (n_batches + 1)
    wave = 3540.5 + 0.9 * np.arange(4300)
    rng = np.random.default_rng(0)
    flux = (1 + 0.1 * np.sin(wave[None, :] / rng.uniform(20, 200, (n, 1)))).astype(np.float32)
    labels = rng.standard_normal((n, 10)).astype(np.float32)
    module = EncoderModule(4300, [f"p{i}" for i in range(10)], **module_kwargs(settings))
    module.set_data_stats(wave, labels, flux)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(flux), torch.from_numpy(labels)), batch_size=bs, shuffle=True
    )

    class Timer(L.Callback):
        times: list[float] = []

        def on_train_batch_start(self, *a):
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            self.times.append(time.perf_counter() - self.t)

    timer = Timer()
    timer.times = []
    trainer = L.Trainer(
        max_epochs=1,
        accelerator=settings["accelerator"],
        devices=1,
        precision=settings["precision"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        gradient_clip_val=settings["gradient_clip"] or None,
        limit_val_batches=0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    wall = time.perf_counter() - t0
    steady = timer.times[1:]  # the first batch pays one-off costs
    per_batch = float(np.median(steady))
    rate = bs / per_batch
    return {
        "batch_size": bs,
        "batches_timed": len(steady),
        "seconds_per_batch_median": round(per_batch, 4),
        "spectra_per_s": round(rate, 1),
        "wall_s_incl_warmup": round(wall, 1),
        "projected_epoch_s": {
            "default_parametric_7030_train": round(7030 / rate, 1),
            "default_nonparametric_5200_train": round(5200 / rate, 1),
            "paper_family_360000_train": round(360000 / rate, 1),
        },
        "accelerator": type(trainer.accelerator).__name__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--batches", type=int, default=40, help="timed batches at the default widths")
    ap.add_argument("--paper-batches", type=int, default=3, help="timed batches at the paper widths (slow on CPU)")
    ap.add_argument(
        "--paper-batch-size",
        type=int,
        default=32,
        help="batch size at the paper widths (paper.yaml's 512 takes minutes per batch on a CPU)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoder_training.json"))
    args = ap.parse_args()
    import torch

    results = {
        "what": "encoder training throughput (forward + backward + AdamW step), spectra of 4300 pixels",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
            "load_average_at_start": os.getloadavg(),
        },
        "runs": [],
    }
    for name, paper, batches in (("default", False, args.batches), ("paper", True, args.paper_batches)):
        settings = merged_settings(paper)
        if paper:
            settings["batch_size"] = args.paper_batch_size
        for augment in (True,) if paper else (True, False):  # augmentation costs the same at any width
            r = measure(settings, batches, args.threads, augment)
            r.update(widths=name, filters=settings["filters"], mlp_hidden=settings["mlp_hidden"], augmentation=augment)
            print(json.dumps(r))
            results["runs"].append(r)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

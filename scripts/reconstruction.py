"""Rule reconstruction: posterior labels -> cumulative mass -> SFH -> spectrum; residuals on the test split."""

import json
import logging

import numpy as np

from galaxy_sbi import plots
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.latents import latents_and_labels
from galaxy_sbi.spectra.posterior import SpectraPosterior
from galaxy_sbi.spectra.reconstruction import Reconstructor, reconstruct_observed, residual_rms
from galaxy_sbi.workflow import run_script

log = logging.getLogger("reconstruction")


def main(smk):
    cfg = smk.params.reconstruction
    seed = smk.params.seed
    family = smk.wildcards.family
    post = SpectraPosterior.load(smk.input.posterior)
    names = post.names
    test, x, labels, _ = latents_and_labels(smk.input.latents, ["test"])
    flux = load_family(list(smk.input.cubes)).flux[test].astype(float)
    rec = Reconstructor.from_files(smk.input.grid, smk.input.sfh, ends=cfg["ends"])
    samples = post.sample_labels(x, cfg["n_samples"], seed=seed)  # (S, N, D)
    mean_labels = samples.mean(0)
    model = rec.from_labels(mean_labels, names)
    rms = residual_rms(flux, model)
    rms_true = residual_rms(flux, rec.from_labels(labels, names))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x), min(cfg["n_plot"], len(x)), replace=False))
    examples = []
    for i in pick:
        r = reconstruct_observed(rec, flux[i], samples[:, i], names)
        t = names.index("t50")
        met = names.index("metallicity")
        examples.append(
            {
                "flux": flux[i],
                "model": r["model"],
                "band": r["band"],
                "text": f"t50 {labels[i, t]:.2f} → {mean_labels[i, t]:.2f} Gyr, [M/H] {labels[i, met]:+.2f} → "
                f"{mean_labels[i, met]:+.2f}; rms {100 * r['rms']:.2f} %",
            }
        )
    plots.plot_reconstruction(
        rec.wavelength, examples, smk.output.plot, f"{family}: test spectra and their reconstruction from the posterior"
    )
    plots.plot_reconstruction_rms(
        rms, rms_true, smk.output.rms_plot, f"{family}: reconstruction residual rms over {len(x)} test spectra"
    )
    q = [50, 90, 99]
    out = {
        "family": family,
        "n_test": int(len(x)),
        "n_samples": cfg["n_samples"],
        "ends": cfg["ends"],
        "rms_units": "fraction of the median flux",
        "rms_posterior_mean": {
            "median": float(np.median(rms)),
            **{f"p{p}": float(np.percentile(rms, p)) for p in q},
            "mean": float(rms.mean()),
        },
        "rms_true_percentiles": {
            "median": float(np.median(rms_true)),
            **{f"p{p}": float(np.percentile(rms_true, p)) for p in q},
        },
        "rms_per_spectrum": rms.tolist(),
    }
    log.info("%s: reconstruction rms median %.4f (true percentiles %.4f)", family, np.median(rms), np.median(rms_true))
    with open(smk.output.summary, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

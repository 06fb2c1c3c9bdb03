"""Rule npe_train / npe_ordering: sbi NPE of the labels given the latents of one family (train + validation splits)."""

import json
import logging

import numpy as np

from galaxy_sbi.seeding import derived_seed
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.latents import latents_and_labels, log_uniform_snr, noisy_latents
from galaxy_sbi.spectra.posterior import train_label_posterior
from galaxy_sbi.workflow import run_script, runtime

log = logging.getLogger("npe_train")


def main(smk):
    settings = dict(smk.params.npe)  # the family's settings (workflow/rules/common.smk: npe_settings)
    if "sfh_window" in settings:  # linexp only
        settings["sfh_window"] = tuple(settings["sfh_window"])
    # the seed's 90 %: the test split is never seen
    rows, x, labels, names = latents_and_labels(smk.input.latents, ["train", "validation"])
    noise = settings.pop("noise")
    if noise:
        # the simulator includes the noise: noisy copies of the training spectra through the same encoder, so one
        # amortised posterior serves clean and noisy spectra (and is calibrated on both)
        flux = load_family(list(smk.input.cubes)).flux[rows]
        model = load_encoder(smk.input.encoder)
        batch_size = runtime(smk, "evaluation")["encode_batch_size"]
        clean = len(x)
        for copy in range(noise["copies"]):
            snr_seed, noise_seed = derived_seed(smk.params.seed, "npe_noise", smk.wildcards.family, str(copy)).spawn(2)
            snr = log_uniform_snr(clean, noise["snr_range"], snr_seed)
            x = np.concatenate([x, noisy_latents(model, flux, snr, noise_seed, batch_size)])
            labels = np.concatenate([labels, labels[:clean]])
        log.info(
            "%d clean + %d noisy latent vectors (S/N %g-%g, log-uniform)", clean, len(x) - clean, *noise["snr_range"]
        )
    log.info("training NPE (%s) on %d latent vectors, labels %s", settings["parametrisation"], len(x), names)
    post = train_label_posterior(labels, x, names, settings, seed=smk.params.seed)
    post.info["latents"] = str(smk.input.latents)
    post.save(smk.output.posterior)
    if "summary" in smk.output.keys():
        with open(smk.output.summary, "w") as f:
            json.dump(
                {
                    "parametrisation": settings["parametrisation"],
                    "labels": names,
                    "theta": post.parametrisation.theta_names,
                    "prior_low": post.low.tolist(),
                    "prior_high": post.high.tolist(),
                    "n_train": len(x),
                    "noise": {"enabled": bool(noise), **(noise or {})},
                    "dequantised": post.info.get("dequantised"),
                    **post.summary,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

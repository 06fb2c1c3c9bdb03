"""Rule npe_train / npe_ordering: sbi NPE of the labels given the latents of one family (train + validation splits)."""

import json
import logging

from galaxy_sbi.inference.npe import train_label_posterior
from galaxy_sbi.spectra.latents import latents_and_labels
from galaxy_sbi.workflow import run_script

log = logging.getLogger("npe_train")


def main(smk):
    settings = dict(smk.params.npe)
    if smk.params.get("parametrisation"):
        settings["parametrisation"] = smk.params.parametrisation
    settings["sfh_window"] = tuple(smk.params.sfh_window)  # used by linexp only
    # the seed's 90 %: the test split is never seen
    _, x, labels, names = latents_and_labels(smk.input.latents, ["train", "validation"])
    log.info("training NPE (%s) on %d latent vectors, labels %s", settings["parametrisation"], len(x), names)
    post = train_label_posterior(labels, x, names, settings, seed=smk.params.seed)
    post.info["latents"] = str(smk.input.latents)
    post.save(smk.output.posterior)
    if "summary" in smk.output.keys():
        with open(smk.output.summary, "w") as f:
            json.dump({"parametrisation": settings["parametrisation"], "labels": names,
                       "theta": post.parametrisation.theta_names, "prior_low": post.low.tolist(),
                       "prior_high": post.high.tolist(), "n_train": len(x), **post.summary}, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

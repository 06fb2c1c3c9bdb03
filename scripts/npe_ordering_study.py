"""Rule npe_ordering_study: the configured parametrisation against another on the test split (order breaking, R^2)."""

import json
import logging

import numpy as np

from galaxy_sbi.spectra.latents import latents_and_labels
from galaxy_sbi.spectra.posterior import SpectraPosterior, evaluate_posterior
from galaxy_sbi.workflow import run_script

log = logging.getLogger("npe_ordering")


def main(smk):
    _, x, labels, _ = latents_and_labels(smk.input.latents, ["test"])
    out = {}
    for i, path in enumerate(smk.input.posteriors):  # the first is the configured parametrisation
        post = SpectraPosterior.load(path)
        if i == 0:
            out["configured"] = post.parametrisation.kind
        ev = evaluate_posterior(
            post,
            post.inputs(x),
            labels,
            smk.params.evaluation["n_samples"],
            seed=smk.params.evaluation["seed"],
            joint=False,
        )["metrics"]
        out[post.parametrisation.kind] = {
            "order_violation_fraction": ev["order_violation_fraction"],
            "r2": {k: v["r2"] for k, v in ev["labels"].items()},
            "mean_r2_percentiles": float(np.mean([v["r2"] for k, v in ev["labels"].items() if k.startswith("t")])),
            "coverage_max_abs_deviation": ev["coverage"]["max_abs_deviation_all"],
            "epochs": post.summary.get("epochs"),
            "training_time_s": post.summary.get("training_time_s"),
        }
        log.info("%s: %s", post.parametrisation.kind, out[post.parametrisation.kind])
    with open(smk.output.ordering, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

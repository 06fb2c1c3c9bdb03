"""Rule npe_train: sbi NPE of the labels given the latents of one family, in one parametrisation (train +
validation splits: the seed's 90 %; the test split is never seen)."""

import json
import logging

import xarray as xr

from galaxy_sbi.spectra.conditioning import npe_training_set
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.error_spectra import load_shapes
from galaxy_sbi.spectra.latents import latents_and_labels
from galaxy_sbi.spectra.posterior import train_label_posterior
from galaxy_sbi.workflow import run_script, runtime

log = logging.getLogger("npe_train")


def main(smk):
    settings = dict(smk.params.npe)  # the family's settings (workflow/rules/common.smk: npe_settings)
    noise = settings.pop("noise")
    rows, x, labels, names = latents_and_labels(smk.input.latents, ["train", "validation"])
    conditioning = []
    if noise:  # the simulator includes the observation: noise (and broadening, masks), told to the NPE or not
        data, encoder = load_family(list(smk.input.cubes)), load_encoder(smk.input.encoder)
        batch = runtime(smk, "evaluation")["encode_batch_size"]
        shapes = {"error_shapes": load_shapes(smk.input.error_spectra)} if "error_power_range" in noise else {}
        x, labels, conditioning = npe_training_set(
            x,
            labels,
            data.flux[rows],
            data.wavelength,
            encoder,
            noise | shapes,
            smk.params.seed,
            smk.wildcards.family,
            batch,
        )
    log.info("training NPE (%s) on %d input vectors, labels %s", settings["parametrisation"], len(x), names)
    with xr.open_dataset(smk.input.cubes[0]) as ds:  # percentiles are cosmic times: 0 to t_obs
        time_range = (0.0, float(ds.attrs["t_obs_gyr"]))
    post = train_label_posterior(
        labels, x, names, settings, seed=smk.params.seed, conditioning=conditioning, time_range=time_range
    )
    post.info["latents"] = str(smk.input.latents)
    post.save(smk.output.posterior)
    summary = post.training_summary(
        n_train=len(x),
        noise={"enabled": bool(noise), **(noise or {}), "error_spectra": str(smk.input.error_spectra)},
        conditioning=post.conditioning,
    )
    with open(smk.output.summary, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

"""Rule reconstruction: posterior labels -> cumulative mass -> SFH -> spectrum; residuals on the test split."""

import json
import logging

import numpy as np

from galaxy_sbi import plots
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.latents import latents_and_labels
from galaxy_sbi.spectra.posterior import SpectraPosterior
from galaxy_sbi.spectra.reconstruction import Reconstructor, reconstruct_test_split
from galaxy_sbi.workflow import run_script

log = logging.getLogger("reconstruction")


def main(smk):
    cfg, family = smk.params.reconstruction, smk.wildcards.family
    test, x, labels, _ = latents_and_labels(smk.input.latents, ["test"])
    flux = load_family(list(smk.input.cubes)).flux[test].astype(float)
    rec = Reconstructor.from_files(smk.input.grid, smk.input.sfh, ends=cfg["ends"])
    post = SpectraPosterior.load(smk.input.posterior)
    out = reconstruct_test_split(post, x, labels, flux, rec, cfg["n_samples"], cfg["n_plot"], smk.params.seed)
    title = f"{family}: test spectra and their reconstruction from the posterior"
    plots.plot_reconstruction(rec.wavelength, out["examples"], smk.output.plot, title)
    title = f"{family}: reconstruction residual rms over {len(x)} test spectra"
    plots.plot_reconstruction_rms(out["rms"], out["rms_true"], smk.output.rms_plot, title)
    log.info(
        "%s: reconstruction rms median %.4f (true labels %.4f)",
        family,
        np.median(out["rms"]),
        np.median(out["rms_true"]),
    )
    with open(smk.output.summary, "w") as f:
        json.dump({"family": family, "ends": cfg["ends"], **out["summary"]}, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

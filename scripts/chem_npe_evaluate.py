"""The joint NPE on the simulator's validation set: APE per parameter, SBC ranks, TARP."""
import json
import logging

import numpy as np
import torch
import xarray as xr

from galaxy_sbi.chem import PARAMETER_NAMES, npe
from galaxy_sbi.chem.emulator import absolute_percentage_error
from galaxy_sbi.inference import calibration as cal
from galaxy_sbi.plots import plot_chem_sbc, plot_chem_tarp
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_npe_evaluate")
    torch.set_num_threads(smk.threads)
    p = smk.params
    posterior, summary = npe.load_posterior(smk.input.posterior)
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 7003]))
    with xr.open_dataset(smk.input.simulations) as ds:
        val = np.where(ds.split.values == "validation")[0]
        pick = rng.choice(val, size=min(p.npe["n_evaluate"], len(val)), replace=False)
        theta, x = ds.theta.values[pick], ds.abundance.values[pick]
    x = x + rng.normal(0.0, p.npe["noise_dex"], x.shape)
    n_s = p.npe["n_posterior_samples"]
    samples = npe.sample(posterior, x, n_s, seed=p.seed)
    ape = absolute_percentage_error(samples.mean(0), theta)
    per = {}
    for i, name in enumerate(PARAMETER_NAMES):
        q = np.percentile(ape[:, i], [16, 50, 84])
        per[name] = {"median": q[1], "p16": q[0], "p84": q[2]}
        log.info("NPE APE %s: median %.1f %% (16 %%: %.1f, 84 %%: %.1f)", name, q[1], q[0], q[2])
    q = np.percentile(ape, [16, 50, 84])
    # from the samples already drawn: sbi's run_sbc / run_tarp would redraw them through rejection sampling
    ranks = cal.sbc_ranks_from_samples(samples, theta)
    tarp = cal.tarp_from_samples(samples, theta, seed=p.seed)
    metrics = {"n_validation": len(theta), "n_posterior_samples": n_s,
               "ape_percent_all": {"median": q[1], "p16": q[0], "p84": q[2]}, "ape_percent": per,
               "target_median_percent": 9.1,
               "sbc_ks_pvalue": dict(zip(PARAMETER_NAMES, cal.sbc_uniformity_pvalues(ranks, n_s).tolist())),
               "tarp_atc": tarp["atc"], "tarp_ks_pvalue": tarp["ks_pvalue"], "training": summary,
               "note": "validation sets are accepted simulator runs: the accepted region, not the whole uniform "
                       "box the NPE was trained on, so SBC/TARP test the NPE where real stars live"}
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=2, default=float)
    plot_chem_sbc(ranks, n_s, list(PARAMETER_NAMES), smk.output.sbc)
    plot_chem_tarp(tarp["ecp"], tarp["alpha"], tarp["atc"], smk.output.tarp)


run_script(main, snakemake)  # noqa: F821

"""Rule npe_evaluate: posterior of every test spectrum (clean and at finite S/N) -> metrics.json and plots."""

import json
import logging

import numpy as np
import xarray as xr

from galaxy_sbi import plots
from galaxy_sbi.inference.calibration import cluster_bootstrap_coverage, coverage_band, tarp_from_samples
from galaxy_sbi.seeding import derived_seed
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.latents import latents_and_labels, noisy_latents
from galaxy_sbi.spectra.posterior import SpectraPosterior, evaluate_posterior
from galaxy_sbi.workflow import run_script, runtime

log = logging.getLogger("npe_evaluate")


def main(smk):
    ev_cfg = smk.params.evaluation
    family = smk.wildcards.family
    post = SpectraPosterior.load(smk.input.posterior)
    names = post.names
    test, x, labels, _ = latents_and_labels(smk.input.latents, ["test"])
    log.info("%s: %d test spectra, %d posterior samples each", family, len(x), ev_cfg["n_samples"])
    res = evaluate_posterior(post, x, labels, ev_cfg["n_samples"], seed=ev_cfg["seed"], keep_samples=True)
    metrics, arr = res["metrics"], res["arrays"]
    samples = arr.pop("samples")
    varying = [i for i in range(len(names)) if np.ptp(labels[:, i]) > 0]
    tarp = tarp_from_samples(samples[:, :, varying], arr["calibration_truth"][:, varying], seed=ev_cfg["seed"])
    metrics["tarp"] = {"atc": tarp["atc"], "ks_pvalue": tarp["ks_pvalue"]}
    metrics["sbc_ks_pvalue"] = {}
    from galaxy_sbi.inference.calibration import sbc_uniformity_pvalues

    pv = sbc_uniformity_pvalues(arr["ranks"][:, varying], ev_cfg["n_samples"])
    metrics["sbc_ks_pvalue"] = {names[i]: float(p) for i, p in zip(varying, pv)}
    del samples

    vnames = [names[i] for i in varying]
    plots.plot_posterior_accuracy(
        labels[:, varying],
        arr["mean"][:, varying],
        arr["std"][:, varying],
        vnames,
        metrics["labels"],
        smk.output.accuracy,
        f"{family}: posterior mean ± std vs truth, {len(x)} test spectra ({post.parametrisation.kind} parametrisation)",
    )
    # the test spectra of one SFH (one per [M/H] cell) have correlated errors: the scatter of their coverage is
    # measured by resampling whole SFHs, not by the binomial band of independent spectra
    with xr.open_dataset(smk.input.latents) as ds:
        sfh_of_test = ds.sfh_index.values[test]
    levels = arr["levels"]
    boot_sd = {
        names[i]: cluster_bootstrap_coverage(arr["credibility"][:, i], sfh_of_test, levels, seed=ev_cfg["seed"]).std(0)
        for i in varying
    }
    sd_max = np.max(list(boot_sd.values()), axis=0)
    metrics["coverage"]["n_sfh"] = int(len(np.unique(sfh_of_test)))
    metrics["coverage"]["sfh_bootstrap_sd"] = {k: v.tolist() for k, v in boot_sd.items()}
    metrics["coverage"]["sfh_bootstrap_sd_max"] = float(sd_max.max())
    band = coverage_band(len(x), levels)
    plots.plot_posterior_coverage(
        levels,
        arr["coverage"],
        band,
        len(x),
        smk.output.coverage,
        f"{family}: coverage on the test split",
        band_sfh=(levels - 1.96 * sd_max, levels + 1.96 * sd_max),
        n_sfh=metrics["coverage"]["n_sfh"],
    )
    plots.plot_posterior_sbc(
        arr["ranks"][:, varying],
        ev_cfg["n_samples"],
        vnames,
        smk.output.sbc,
        title=f"{family}: SBC ranks on {len(x)} test spectra (grey: 99 % band of a uniform histogram)",
    )

    # finite S/N: same posterior (amortised, no retraining) on latents of noisy test spectra
    snr_metrics = {"clean": metrics}
    extra_tarp = {}
    if ev_cfg["snr"]:  # loaded once for every S/N
        test_flux = load_family(list(smk.input.cubes)).flux[test]
        model = load_encoder(smk.input.encoder)
    for snr in ev_cfg["snr"]:
        xs = noisy_latents(
            model,
            test_flux,
            float(snr),
            derived_seed(smk.params.seed, "evaluation_noise", str(snr)),
            runtime(smk, "evaluation")["encode_batch_size"],
        )
        r = evaluate_posterior(
            post, xs, labels, ev_cfg["n_samples"], seed=ev_cfg["seed"], joint=False, keep_samples=True
        )
        s = r["arrays"].pop("samples")
        t = tarp_from_samples(s[:, :, varying], r["arrays"]["calibration_truth"][:, varying], seed=ev_cfg["seed"])
        r["metrics"]["tarp"] = {"atc": t["atc"], "ks_pvalue": t["ks_pvalue"]}
        extra_tarp[f"S/N {snr:g}"] = (t["ecp"], t["alpha"], t["atc"])
        snr_metrics[f"{snr:g}"] = r["metrics"]
        log.info(
            "S/N %g: t50 R2 %.3f, coverage max dev %.3f",
            snr,
            r["metrics"]["labels"]["t50"]["r2"],
            r["metrics"]["coverage"]["max_abs_deviation_all"],
        )
    plots.plot_posterior_tarp(
        tarp["ecp"], tarp["alpha"], tarp["atc"], smk.output.tarp, f"{family}: TARP on the test split", extra=extra_tarp
    )
    noise = smk.params.npe_noise
    noise_note = (
        f"NPE trained with noisy copies, S/N {noise['snr_range'][0]:g}-{noise['snr_range'][1]:g}"
        if noise
        else "NPE trained on clean spectra only"
    )
    order = ["clean"] + sorted([k for k in snr_metrics if k != "clean"], key=float, reverse=True)
    plots.plot_accuracy_vs_snr(
        {k: snr_metrics[k] for k in order},
        vnames,
        smk.output.snr,
        f"{family}: the posterior on noisy test spectra ({noise_note})",
    )
    metrics["snr"] = {
        k: {
            "labels": {n: v["r2"] for n, v in m["labels"].items()},
            "coverage_max_abs_deviation": m["coverage"]["max_abs_deviation_all"],
            "tarp_atc": m["tarp"]["atc"],
            "order_violation_fraction": m["order_violation_fraction"],
        }
        for k, m in snr_metrics.items()
        if k != "clean"
    }
    metrics.update(
        {
            "family": family,
            "parametrisation": post.parametrisation.kind,
            "theta": post.parametrisation.theta_names,
            "prior": post.info.get("prior"),
            "npe_epochs": post.summary.get("epochs"),
            "npe_training_time_s": post.summary.get("training_time_s"),
            "npe_noise": noise_note,
            "paper_reference": "Iglesias-Navarro et al. 2024: R2(t50) = 0.97, well-calibrated",
            "outlier_definition": "|mean - truth - bias| > 3 sigma_NMAD",
        }
    )
    metrics["r2_t50"] = metrics["labels"]["t50"]["r2"]
    xr.Dataset(
        {
            "posterior_mean": (("sample", "parameter"), arr["mean"]),
            "posterior_std": (("sample", "parameter"), arr["std"]),
            "posterior_quantiles": (("quantile", "sample", "parameter"), arr["quantiles"]),
            "labels": (("sample", "parameter"), labels),
            "sbc_rank": (("sample", "parameter"), arr["ranks"]),
        },
        coords={"sample": test, "parameter": names, "quantile": arr["quantile_levels"]},
        attrs={"n_samples": ev_cfg["n_samples"], "family": family},
    ).to_netcdf(smk.output.summary)
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821

"""Test-split evaluation of a spectra posterior (seed section 5): accuracy, coverage, SBC and TARP on the clean test
spectra and on noisy copies at each configured S/N (the same amortised posterior, no retraining).

The test spectra of one SFH (one per [M/H] cell) have correlated errors, so the scatter of their coverage is
measured by resampling whole SFHs (:func:`galaxy_sbi.inference.calibration.cluster_bootstrap_coverage`), not by the
binomial band of independent spectra.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from .. import plots
from ..inference.calibration import cluster_bootstrap_coverage, coverage_band, sbc_uniformity_pvalues, tarp_from_samples
from ..seeding import derived_seed
from .latents import noisy_latents
from .posterior import SpectraPosterior, evaluate_posterior

log = logging.getLogger(__name__)

#: the seed's published figure, quoted beside ours (never in our rows)
PAPER_REFERENCE = "Iglesias-Navarro et al. 2024: R2(t50) = 0.97, well-calibrated"


def varying_columns(labels: np.ndarray) -> list[int]:
    """Label columns that vary over the set (a constant label, e.g. [alpha/Fe] without an alpha axis, has no
    calibration to test)."""
    return [i for i in range(labels.shape[1]) if np.ptp(labels[:, i]) > 0]


def _with_tarp_and_sbc(result: dict, names, labels: np.ndarray, n_samples: int, seed: int, sbc: bool = True) -> dict:
    """Adds TARP (and the SBC rank uniformity p-values) to an :func:`evaluate_posterior` result; drops its samples."""
    metrics, arr = result["metrics"], result["arrays"]
    samples = arr.pop("samples")
    v = varying_columns(labels)
    tarp = tarp_from_samples(samples[:, :, v], arr["calibration_truth"][:, v], seed=seed)
    metrics["tarp"] = {"atc": tarp["atc"], "ks_pvalue": tarp["ks_pvalue"]}
    result["tarp"] = tarp
    if sbc:
        pv = sbc_uniformity_pvalues(arr["ranks"][:, v], n_samples)
        metrics["sbc_ks_pvalue"] = {names[i]: float(p) for i, p in zip(v, pv)}
    return result


def evaluate_clean(post: SpectraPosterior, x, labels, sfh_index, n_samples: int, seed: int) -> dict:
    """Metrics, per-spectrum arrays and TARP on the clean test spectra, with the SFH-bootstrap scatter of the
    coverage (``sfh_index``: the SFH of each test spectrum)."""
    result = _with_tarp_and_sbc(
        evaluate_posterior(post, x, labels, n_samples, seed=seed, keep_samples=True),
        post.names,
        labels,
        n_samples,
        seed,
    )
    metrics, arr = result["metrics"], result["arrays"]
    levels, names = arr["levels"], post.names
    boot_sd = {
        names[i]: cluster_bootstrap_coverage(arr["credibility"][:, i], sfh_index, levels, seed=seed).std(0)
        for i in varying_columns(labels)
    }
    sd_max = np.max(list(boot_sd.values()), axis=0)
    metrics["coverage"].update(
        {
            "n_sfh": int(len(np.unique(sfh_index))),
            "sfh_bootstrap_sd": {k: v.tolist() for k, v in boot_sd.items()},
            "sfh_bootstrap_sd_max": float(sd_max.max()),
        }
    )
    result["sfh_band"] = (levels - 1.96 * sd_max, levels + 1.96 * sd_max)
    return result


def evaluate_noisy(
    post: SpectraPosterior,
    encoder,
    flux,
    labels,
    snrs,
    n_samples: int,
    seed: int,
    master_seed: int,
    encode_batch_size: int = 512,
    wavelength=None,
    instrument: dict | None = None,
) -> dict:
    """S/N -> the evaluation of the latents of the test spectra with Gaussian noise at that S/N (joint HPD left out).
    With ``instrument`` (``evaluation.degraded``'s keys) the spectra are first broadened to its FWHM, as the told NPE's
    training copies are (sigma 0, no mask: :func:`fixed_degradation`); without it they stay at the models'."""
    out = {}
    for snr in snrs:
        seed_snr = derived_seed(master_seed, "evaluation_noise", str(snr))
        x = white_noise_latents(encoder, flux, float(snr), seed_snr, encode_batch_size, wavelength, instrument)
        r = evaluate_posterior(post, post.inputs(x, snr), labels, n_samples, seed=seed, joint=False, keep_samples=True)
        out[float(snr)] = _with_tarp_and_sbc(r, post.names, labels, n_samples, seed, sbc=False)
        m = r["metrics"]
        log.info(
            "S/N %g: t50 R2 %.3f, coverage max dev %.3f",
            snr,
            m["labels"]["t50"]["r2"],
            m["coverage"]["max_abs_deviation_all"],
        )
    return out


def told_instrument(post, degraded_cfg: dict) -> dict | None:
    """``evaluation.degraded`` when the posterior was told sigma (its sigma-0 training copies carry that instrument's
    broadening, so its white-noise test spectra must too), else None."""
    return degraded_cfg if "sigma_100kms" in post.conditioning else None


def white_noise_latents(encoder, flux, snr: float, seed: int, batch_size: int = 512, wavelength=None, instrument=None):
    """Latents of the spectra with white noise at ``snr`` (S/N of the median flux) drawn from ``seed``; with
    ``instrument`` (``evaluation.degraded``'s keys) first broadened to its FWHM (sigma 0, no mask:
    :func:`fixed_degradation`), without it at the models' resolution."""
    from .matched import degraded_latents, encoder_fill

    if instrument is None:
        return noisy_latents(encoder, flux, snr, seed, batch_size)
    setting = {"snr": snr, "sigma_kms": 0.0, "blue_mask": False}
    degradation = fixed_degradation(setting, wavelength, instrument, encoder_fill(encoder))
    return degraded_latents(encoder, flux, degradation, 1, np.random.default_rng(seed), batch_size)


def degraded_settings(cfg: dict) -> list[dict]:
    """Every fixed degradation of ``evaluation.degraded``: S/N x sigma x (no mask, the blue-end mask)."""
    return [
        {"snr": float(snr), "sigma_kms": float(sigma), "blue_mask": mask}
        for snr in cfg["snr"]
        for sigma in cfg["sigma_kms"]
        for mask in (False, True)
    ]


def setting_name(setting: dict) -> str:
    mask = f", < {setting['blue_mask_below']:g} Å masked" if setting["blue_mask"] else ""
    return f"S/N {setting['snr']:g}, σ {setting['sigma_kms']:g}{mask}"


def fixed_degradation(setting: dict, wavelength, cfg: dict, fill=None):
    """The Degradation of one setting (snr, sigma_kms, blue_mask): broadened from the models' 2.51 Å to the instrument
    (``cfg['instrumental_fwhm_angstrom']``) and sigma, noise at the S/N of the median flux, white or with the
    wavelength dependence of ``cfg['error_shape']`` when given (median 1, :mod:`.error_spectra`), the rest frame below
    ``cfg['blue_mask_below_angstrom']`` masked when asked (filled with ``fill``, as in the matched posteriors)."""
    from .matched import Degradation, broadening_kms

    wave = np.asarray(wavelength, float)
    good = wave >= cfg["blue_mask_below_angstrom"] if setting["blue_mask"] else np.ones(len(wave), bool)
    sigma = broadening_kms(wave, setting["sigma_kms"], float(cfg["instrumental_fwhm_angstrom"]))
    shape = cfg.get("error_shape")
    shape = np.ones(len(wave)) if shape is None else np.asarray(shape, float)
    return Degradation(wave, sigma, good, shape / setting["snr"], fill)


def degraded_test_latents(encoder, flux, wavelength, cfg: dict, seed: int, batch_size: int = 512):
    """(setting with its name, latents) of the spectra at every fixed setting of ``evaluation.degraded``; the noise
    draws are seeded per setting, so every caller (the evaluation, the conditioning study) sees the same spectra."""
    from .matched import degraded_latents, encoder_fill

    fill = encoder_fill(encoder)
    for k, setting in enumerate(degraded_settings(cfg)):
        setting["blue_mask_below"] = float(cfg["blue_mask_below_angstrom"])
        setting["name"] = setting_name(setting)
        rng = np.random.default_rng(derived_seed(seed, "degraded", str(k)))
        degradation = fixed_degradation(setting, wavelength, cfg, fill)
        yield setting, degraded_latents(encoder, flux, degradation, 1, rng, batch_size)


def evaluate_degraded(post, encoder, flux, wavelength, labels, cfg: dict, n_samples: int, seed: int, batch_size=512):
    """The posterior on the off-grid test spectra degraded at each fixed setting (:func:`degraded_test_latents`)."""
    out = []
    for setting, x in degraded_test_latents(encoder, flux, wavelength, cfg, seed, batch_size):
        x = post.inputs(x, setting["snr"], setting["sigma_kms"], setting["blue_mask"])
        r = evaluate_posterior(post, x, labels, n_samples, seed=seed, joint=False, dequantise=False)
        m = r["metrics"]
        out.append(
            {
                **setting,
                "labels": m["labels"],
                "coverage_max_abs_deviation": m["coverage"]["max_abs_deviation"],
                "coverage_max_abs_deviation_all": m["coverage"]["max_abs_deviation_all"],
                "coverage": m["coverage"]["empirical"],
                "order_violation_fraction": m["order_violation_fraction"],
            }
        )
        log.info(
            "degraded (%s): t50 R2 %.3f, coverage max dev %.3f",
            setting["name"],
            m["labels"]["t50"]["r2"],
            m["coverage"]["max_abs_deviation_all"],
        )
    return out


def snr_summary(noisy: dict) -> dict:
    """The per-S/N headline numbers stored in metrics.json."""
    return {
        f"{snr:g}": {
            "labels": {n: v["r2"] for n, v in r["metrics"]["labels"].items()},
            "coverage_max_abs_deviation": r["metrics"]["coverage"]["max_abs_deviation_all"],
            "tarp_atc": r["metrics"]["tarp"]["atc"],
            "order_violation_fraction": r["metrics"]["order_violation_fraction"],
        }
        for snr, r in noisy.items()
    }


#: what each label parametrisation's posterior assumes about the SFH
ASSUMPTIONS = {
    "linexp": "a linear-exponential SFH (t0, tau): the nine percentiles are those of that law, so it cannot describe "
    "another SFH shape",
    "naive": "no SFH law: the nine percentiles are free (their order is not enforced)",
    "ordered": "no SFH law: the nine percentiles are free; samples are restricted to t10 < ... < t90",
    "log_gaps": "no SFH law: the nine percentiles are free and ordered by construction",
}


def assumptions(kind: str, names) -> dict:
    """metrics.json's statement of what the posterior assumes, and what the comparison with the paper must say."""
    alpha = "alpha" in names
    return {
        "posterior": f"{kind}: {ASSUMPTIONS[kind]}",
        "alpha_axis": (
            "[alpha/Fe] inferred (the SSPs have an alpha axis)"
            if alpha
            else "no [alpha/Fe] axis (FASTAR has none; milespy or MILES FITS files give one): [alpha/Fe] is neither "
            "varied nor inferred"
        ),
        "paper_comparison": "the paper's R2(t50) 0.97 is for free percentiles with [alpha/Fe] varied"
        + ("" if alpha else "; this model has no alpha axis")
        + ("; linexp fits the very law that made the data" if kind == "linexp" else ""),
    }


def evaluate_off_grid(post: SpectraPosterior, encoder, path, n_samples: int, seed: int, batch_size: int = 512):
    """The posterior on the family's off-grid test set (clean): metrics with TARP, its per-spectrum arrays, and the
    set's flux, wavelength and labels for the degraded settings."""
    with xr.open_dataset(path) as ds:
        flux, labels, wave = ds.flux.values, ds.labels.values, ds.wavelength.values
        if list(ds.parameter.values) != list(post.names):
            raise ValueError(f"off-grid labels {list(ds.parameter.values)} are not the posterior's {post.names}")
        below = ds.mass_fraction_below_min_age.values
        # the prior as a user of early-type galaxies would check it: how many SFHs end in a burst younger than the
        # youngest SSP (its mass is given that SSP's spectrum)
        recent = labels[:, post.names.index("t90")] > float(ds.attrs["t_obs_gyr"]) - 0.03
        prior = {
            "t90_within_last_30_myr_fraction": float(recent.mean()),
            "mass_fraction_below_youngest_ssp": {"median": float(np.median(below)), "max": float(below.max())},
            "sfh_prior": ds.attrs.get("sfh_prior", ""),
            "metallicity_prior": ds.attrs.get("metallicity_prior", ""),
        }
    x = post.inputs(encoder.encode(flux, batch_size=batch_size)[0])  # noise-free
    r = evaluate_posterior(post, x, labels, n_samples, seed=seed, keep_samples=True, dequantise=False)
    r = _with_tarp_and_sbc(r, post.names, labels, n_samples, seed)
    m = r["metrics"]
    m["prior"] = prior
    log.info(
        "off-grid: t50 R2 %.3f, coverage max dev %.3f", m["labels"]["t50"]["r2"], m["coverage"]["max_abs_deviation_all"]
    )
    return r, flux, wave, labels


def noise_note(noise) -> str:
    if not noise:
        return "NPE trained on clean spectra only"
    snr = f"S/N {noise['snr_range'][0]:g}-{noise['snr_range'][1]:g}"
    if "sigma_100kms" in noise.get("inputs", []):
        sigma = noise["sigma_kms_range"]
        shape = ""
        if "error_power_range" in noise:
            u = noise["error_power_range"]
            shape = f", noise shaped by an SDSS error spectrum to a power {u[0]:g}-{u[1]:g}"
        return (
            f"NPE trained with observation-like copies ({snr}, sigma {sigma[0]:g}-{sigma[1]:g} km/s, blue-end mask "
            f"with probability {noise['mask_probability']:g}{shape}), told each spectrum's log10 S/N, sigma and mask"
        )
    told = ", told each spectrum's log10 S/N (noise-free: 3)" if noise.get("inputs") else ""
    return f"NPE trained with white-noise copies, {snr}{told}"


def posterior_summary(arr: dict, labels, rows, names, n_samples: int, family: str) -> xr.Dataset:
    """posterior_summary.nc: mean, std, quantiles and SBC rank of every test spectrum (rows: its index in the
    family)."""
    return xr.Dataset(
        {
            "posterior_mean": (("sample", "parameter"), arr["mean"]),
            "posterior_std": (("sample", "parameter"), arr["std"]),
            "posterior_quantiles": (("quantile", "sample", "parameter"), arr["quantiles"]),
            "labels": (("sample", "parameter"), labels),
            "sbc_rank": (("sample", "parameter"), arr["ranks"]),
        },
        coords={"sample": rows, "parameter": names, "quantile": arr["quantile_levels"]},
        attrs={"n_samples": n_samples, "family": family},
    )


def _plot_accuracy_and_coverage(result: dict, post: SpectraPosterior, labels, paths, titles, **sfh_band) -> None:
    """The accuracy and coverage plots of one evaluated set; ``paths``/``titles``: (accuracy, coverage)."""
    metrics, arr = result["metrics"], result["arrays"]
    v = varying_columns(labels)
    plots.plot_posterior_accuracy(
        labels[:, v],
        arr["mean"][:, v],
        arr["std"][:, v],
        [post.names[i] for i in v],
        metrics["labels"],
        paths[0],
        titles[0],
    )
    levels = arr["levels"]
    n = len(labels)
    plots.plot_posterior_coverage(levels, arr["coverage"], coverage_band(n, levels), n, paths[1], titles[1], **sfh_band)


def plot_evaluation(clean: dict, noisy: dict, post: SpectraPosterior, labels, family: str, paths, note: str) -> None:
    """accuracy, coverage, SBC, TARP and accuracy-vs-S/N plots of one family's evaluation."""
    metrics, arr = clean["metrics"], clean["arrays"]
    v = varying_columns(labels)
    vnames = [post.names[i] for i in v]
    n = len(labels)
    _plot_accuracy_and_coverage(
        clean,
        post,
        labels,
        (paths.accuracy, paths.coverage),
        (
            f"{family}: posterior mean ± std vs truth, {n} test spectra ({post.parametrisation.kind} parametrisation)",
            f"{family}: coverage on the test split",
        ),
        band_sfh=clean["sfh_band"],
        n_sfh=metrics["coverage"]["n_sfh"],
    )
    plots.plot_sbc(
        arr["ranks"][:, v],
        metrics["n_samples"],
        vnames,
        paths.sbc,
        title=f"{family}: SBC ranks on {n} test spectra (grey: 99 % band of a uniform histogram)",
    )
    tarp = clean["tarp"]
    extra = {f"S/N {snr:g}": (r["tarp"]["ecp"], r["tarp"]["alpha"], r["tarp"]["atc"]) for snr, r in noisy.items()}
    plots.plot_tarp(
        tarp["ecp"], tarp["alpha"], tarp["atc"], paths.tarp, f"{family}: TARP on the test split", extra=extra
    )
    by_snr = {"clean": metrics, **{f"{snr:g}": r["metrics"] for snr, r in sorted(noisy.items(), reverse=True)}}
    plots.plot_accuracy_vs_snr(by_snr, vnames, paths.snr, f"{family}: the posterior on noisy test spectra ({note})")


def plot_off_grid(
    off: dict, degraded: list, post: SpectraPosterior, labels, family: str, paths, noise: str = "white noise"
) -> None:
    """accuracy_off_grid.png, coverage_off_grid.png and degraded.png (``noise``: what the degraded spectra's is)."""
    n = len(labels)
    _plot_accuracy_and_coverage(
        off,
        post,
        labels,
        (paths.accuracy_off_grid, paths.coverage_off_grid),
        (
            f"{family}: posterior mean ± std vs truth, {n} off-grid test spectra (each its own SFH and [M/H])",
            f"{family}: coverage on the off-grid test set",
        ),
    )
    vnames = [post.names[i] for i in varying_columns(labels)]
    plots.plot_degraded_grid(
        degraded,
        vnames,
        paths.degraded,
        f"{family}: the posterior on {n} off-grid test spectra degraded at fixed settings ({noise}; one amortised "
        "posterior" + (", told each setting)" if post.conditioning else ")"),
    )


def evaluate_family(
    posterior_path,
    latents_path,
    cubes,
    encoder_path,
    cfg: dict,
    master_seed: int,
    npe_noise,
    family: str,
    outputs,
    encode_batch_size: int = 512,
    off_grid_path=None,
    error_shape=None,
) -> dict:
    """The whole npe_evaluate rule: the off-grid test set (``off_grid_path``) clean and at the fixed degradations
    of ``cfg['degraded']`` (their noise shaped by ``error_shape``, median 1, when given: :mod:`.error_spectra`), the
    test split of ``latents_path`` clean and at ``cfg['snr']`` (white noise); writes the plots and
    posterior_summary.nc named in ``outputs`` and returns metrics.json's content."""
    from .datasets import load_family
    from .encoder import load_encoder
    from .latents import latents_and_labels

    post = SpectraPosterior.load(posterior_path)
    test, x, labels, _ = latents_and_labels(latents_path, ["test"])
    with xr.open_dataset(latents_path) as ds:
        sfh_index = ds.sfh_index.values[test]
    log.info("%s: %d test spectra, %d posterior samples each", family, len(x), cfg["n_samples"])
    clean = evaluate_clean(post, post.inputs(x), labels, sfh_index, cfg["n_samples"], cfg["seed"])
    encoder = load_encoder(encoder_path) if cfg["snr"] or off_grid_path is not None else None
    noisy = {}
    instrument = told_instrument(post, cfg["degraded"])
    if cfg["snr"]:
        data = load_family(list(cubes))
        noisy = evaluate_noisy(
            post,
            encoder,
            data.flux[test],
            labels,
            cfg["snr"],
            cfg["n_samples"],
            cfg["seed"],
            master_seed,
            encode_batch_size,
            data.wavelength,
            instrument,
        )
    note = noise_note(npe_noise)
    plot_evaluation(clean, noisy, post, labels, family, outputs, note)
    posterior_summary(clean["arrays"], labels, test, post.names, cfg["n_samples"], family).to_netcdf(outputs.summary)
    metrics = clean["metrics"]
    metrics["snr"] = snr_summary(noisy)
    metrics["snr_definition"] = "the test split with white noise at the S/N of the median flux" + (
        f", broadened first to the instrument's {instrument['instrumental_fwhm_angstrom']:g} A FWHM (sigma 0, no mask)"
        if instrument
        else " (the models' resolution)"
    )
    if off_grid_path is not None:
        off, flux_off, wave, labels_off = evaluate_off_grid(
            post, encoder, off_grid_path, cfg["n_samples"], cfg["seed"], encode_batch_size
        )
        degraded_cfg = cfg["degraded"] if error_shape is None else {**cfg["degraded"], "error_shape": error_shape}
        degraded = evaluate_degraded(
            post, encoder, flux_off, wave, labels_off, degraded_cfg, cfg["n_samples"], cfg["seed"], encode_batch_size
        )
        noise = "white noise" if error_shape is None else "noise shaped like an SDSS error spectrum"
        plot_off_grid(off, degraded, post, labels_off, family, outputs, noise)
        metrics["off_grid"] = off["metrics"]
        metrics["off_grid"]["definition"] = (
            "every test spectrum its own SFH drawn from the prior and its own continuous [M/H]: no truth on the "
            "training lattice; coverage judged against the continuous truths (no dequantisation)"
        )
        metrics["degraded"] = {
            "settings": degraded,
            "definition": "the off-grid test spectra broadened by sqrt(sigma^2 + sigma_instrument^2 - sigma_models^2) "
            f"(instrument {cfg['degraded']['instrumental_fwhm_angstrom']:g} A FWHM, models 2.51 A), "
            + (
                "white noise"
                if error_shape is None
                else "noise with an SDSS error spectrum's wavelength dependence (results/spectra/error_spectra.nc, "
                "the sources' geometric mean)"
            )
            + " at the S/N of the median flux, with and without the rest frame below "
            f"{cfg['degraded']['blue_mask_below_angstrom']:g} A masked; one amortised posterior (no retraining), "
            f"given what it was trained to be told: {', '.join(post.conditioning) or 'nothing'}",
            "bar": "coverage within +-0.05 at every level of every label",
            "meets_bar": [d["name"] for d in degraded if d["coverage_max_abs_deviation_all"] <= 0.05],
        }
    metrics.update(
        family=family,
        parametrisation=post.parametrisation.kind,
        theta=post.parametrisation.theta_names,
        prior=post.info.get("prior"),
        npe_epochs=post.summary.get("epochs"),
        npe_training_time_s=post.summary.get("training_time_s"),
        npe_noise=note,
        paper_reference=PAPER_REFERENCE,
        assumptions=assumptions(post.parametrisation.kind, post.names),
        outlier_definition="|mean - truth - bias| > 3 sigma_NMAD",
        r2_t50_on_grid=metrics["labels"]["t50"]["r2"],
    )
    # the headline: the off-grid set when there is one; the top-level labels / coverage are the on-grid test split
    head = metrics.get("off_grid", metrics)
    metrics["headline"] = {
        "test_set": "off_grid" if "off_grid" in metrics else "test split (on the training lattice)",
        "r2": {n: v["r2"] for n, v in head["labels"].items()},
        "coverage_max_abs_deviation": head["coverage"]["max_abs_deviation"],
    }
    metrics["r2_t50"] = head["labels"]["t50"]["r2"]
    metrics["on_grid_note"] = "labels, coverage, sbc, tarp, snr: the test split of the training cubes (on the lattice)"
    return metrics

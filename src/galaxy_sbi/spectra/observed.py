"""The observed-galaxy stage, one function per rule: prepare the spectrum (and its sigma), fit it with pPXF, infer it
with the matched posterior (and check that posterior on synthetic spectra degraded like it), summarise.

Files in results/observed/{galaxy}/: prepared.nc, ppxf.npz, posterior.pt, samples.nc, checks.json, summary.json,
posterior_table.{csv,md} and the plots.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ..seeding import derived_seed
from . import matched
from .observation import MASK_BITS, PreparedSpectrum, prepare, read_spectrum, resolve_path

log = logging.getLogger(__name__)

PERCENTILES = tuple(range(10, 100, 10))


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------


def template_fwhm(instrumental_fwhm: np.ndarray, model_fwhm: float = matched.MODEL_FWHM_ANGSTROM) -> np.ndarray:
    """The FWHM pPXF's templates are broadened to: the instrument's, never below the models' own (an unknown
    instrument counts as the models')."""
    f = np.asarray(instrumental_fwhm, float)
    return np.maximum(np.where(np.isfinite(f), f, model_fwhm), model_fwhm)


def measure_sigma(prepared: PreparedSpectrum, sps_file, mdegree: int) -> dict:
    """The galaxy's velocity and dispersion from one unregularised pPXF fit (templates broadened to the
    instrument, so sigma is the galaxy's; two moments, the multiplicative polynomial of ``mdegree``)."""
    from ppxf.ppxf import ppxf

    from .ppxf_baseline import load_templates, log_rebinned

    sps, _ = load_templates(sps_file, prepared.wavelength, template_fwhm(prepared.instrumental_fwhm))
    galaxy, noise, ln_lam, velscale, good = log_rebinned(
        prepared.wavelength,
        np.where(prepared.good, prepared.flux, 1.0),
        np.where(prepared.good, prepared.error, 1.0),
        prepared.good,
    )
    pp = ppxf(
        sps.templates.reshape(sps.templates.shape[0], -1),
        galaxy,
        noise,
        velscale,
        [0.0, 100.0],
        moments=2,
        bounds=[[-500, 500], [1, 1000]],  # de-redshifted: the velocity is a residual; keeps the templates covering
        degree=-1,
        mdegree=mdegree,
        lam=np.exp(ln_lam),
        lam_temp=sps.lam_temp,
        goodpixels=good,
        quiet=True,
    )
    return {"velocity_kms": float(pp.sol[0]), "sigma_kms": float(pp.sol[1]), "sigma_error_kms": float(pp.error[1])}


def prepare_galaxy(galaxy: str, entry: dict, grid_path, preparation: dict, ppxf_settings: dict, sps_file) -> xr.Dataset:
    """Read, check and prepare one galaxy (``entry``: its config), measure its sigma with pPXF; the dataset of
    prepared.nc. Every user-fixable problem is an InputError naming the file, raised before any model is loaded."""
    path = resolve_path(entry["file"])
    spec = read_spectrum(path)
    if "wavelengths" in entry:
        spec.vacuum = entry["wavelengths"] == "vacuum"
    redshift = entry.get("redshift", spec.redshift)
    if redshift is None:
        raise InputError(f"{path}: the file gives no redshift; set observed.galaxies.{galaxy}.redshift")
    with xr.open_dataset(grid_path) as grid:
        wavelength = grid["wavelength"].values.astype(float)
    prepared = prepare(
        spec,
        wavelength,
        redshift=float(redshift),
        settings=preparation,
        instrumental_fwhm_angstrom=entry.get("instrumental_fwhm_angstrom"),
        mask_emission=entry.get("mask_emission", True),
    )
    kin = measure_sigma(prepared, sps_file, ppxf_settings["mdegree"])
    if "sigma_kms" in entry:
        sigma, source = float(entry["sigma_kms"]), "config"
    elif spec.sigma_kms is not None:
        sigma, source = spec.sigma_kms, "file (SDSS VDISP)"
    else:
        sigma, source = kin["sigma_kms"], "pPXF on the prepared spectrum"
    log.info("%s: sigma %.1f km/s from the %s (pPXF: %.1f km/s)", galaxy, sigma, source, kin["sigma_kms"])
    attrs = dict(prepared.attrs)
    attrs.update(
        galaxy=galaxy,
        redshift_source="config" if "redshift" in entry else "file",
        sigma_kms=sigma,
        sigma_source=source,
        ppxf_sigma_kms=kin["sigma_kms"],
        ppxf_sigma_error_kms=kin["sigma_error_kms"],
        ppxf_velocity_kms=kin["velocity_kms"],
        file_sigma_kms=np.nan if spec.sigma_kms is None else spec.sigma_kms,
        mask_bits=json.dumps(MASK_BITS),
        **{f"file_{k}": str(v) for k, v in spec.meta.items()},
    )
    attrs["observed_rest_range_angstrom"] = np.asarray(attrs["observed_rest_range_angstrom"])
    return xr.Dataset(
        {
            "flux": ("wavelength", prepared.flux, {"long_name": "flux / median over good pixels (0 where masked)"}),
            "error": ("wavelength", prepared.error, {"long_name": "1-sigma error, same units (inf where masked)"}),
            "good": ("wavelength", prepared.good.astype(np.int8), {"long_name": "1: used, 0: masked"}),
            "mask_reason": ("wavelength", prepared.mask_reason, {"long_name": f"bits {json.dumps(MASK_BITS)}"}),
            "instrumental_fwhm": ("wavelength", prepared.instrumental_fwhm, {"units": "Angstrom", "frame": "rest"}),
        },
        coords={"wavelength": ("wavelength", wavelength, {"units": "Angstrom", "frame": "rest, air"})},
        attrs=attrs,
    )


def load_prepared(path) -> tuple[PreparedSpectrum, dict]:
    with xr.open_dataset(path) as ds:
        prepared = PreparedSpectrum(
            ds["wavelength"].values,
            ds["flux"].values,
            ds["error"].values,
            ds["good"].values.astype(bool),
            ds["mask_reason"].values,
            ds["instrumental_fwhm"].values,
            dict(ds.attrs),
        )
    return prepared, prepared.attrs


# ---------------------------------------------------------------------------------------------
# pPXF
# ---------------------------------------------------------------------------------------------


def ppxf_fit(prepared: PreparedSpectrum, sps_file, settings: dict, t_obs: float, t_start: float, seed: int) -> dict:
    """pPXF's regularised population fit of the prepared spectrum (the baselines' recipe, with the galaxy's mask,
    error spectrum, multiplicative polynomial and instrument-matched templates)."""
    from .ppxf_baseline import fit_ppxf, load_templates

    templates = load_templates(sps_file, prepared.wavelength, template_fwhm(prepared.instrumental_fwhm))
    return fit_ppxf(
        prepared.wavelength,
        np.where(prepared.good, prepared.flux, 1.0),
        np.where(prepared.good, prepared.error, 1.0),
        templates,
        t_obs=t_obs,
        t_start=t_start,
        percentiles=PERCENTILES,
        n_bootstrap=settings["n_bootstrap"],
        seed=seed,
        good=prepared.good,
        mdegree=settings["mdegree"],
    )


# ---------------------------------------------------------------------------------------------
# the matched posterior
# ---------------------------------------------------------------------------------------------


def degradation_for(prepared: PreparedSpectrum, encoder=None) -> matched.Degradation:
    """The observation's degradation; masked pixels filled as ``encoder`` expects (None: for noiseless use only)."""
    sigma = matched.broadening_kms(prepared.wavelength, prepared.attrs["sigma_kms"], prepared.instrumental_fwhm)
    fill = None if encoder is None else matched.encoder_fill(encoder)
    return matched.Degradation(prepared.wavelength, sigma, prepared.good, prepared.error, fill)


def matched_posterior(prepared, data, encoder, reconstructor, npe_settings: dict, settings: dict, seed: int) -> dict:
    """Train the NPE on the family's train + validation spectra degraded like the observation (validation by whole
    SFHs), evaluate it on the test spectra degraded the same way (own noise), sample the galaxy, and run the
    checks: latent OOD tests and the reconstruction chi^2 per pixel against the degraded test spectra's.

    Returns dict(posterior, samples (S, n_labels), calibration (evaluate_posterior's metrics), checks)."""
    from .posterior import evaluate_posterior, train_label_posterior

    model = settings["model"]
    deg = degradation_for(prepared, encoder)
    train = np.flatnonzero(data.split != "test")
    test = data.indices("test")
    rng_train, rng_test = (np.random.default_rng(s) for s in derived_seed(seed, "observed").spawn(2))
    copies = model["noise_copies"]
    x = matched.degraded_latents(encoder, data.flux[train], deg, copies, rng_train)
    labels = np.tile(data.labels[train], (copies, 1))
    groups = np.tile(data.sfh_index[train], copies)
    time_range = (0.0, float(data.attrs["t_obs_gyr"]))
    post = train_label_posterior(
        labels, x, data.parameters, npe_settings, seed=seed, validation_groups=groups, time_range=time_range
    )
    test_flux = deg.apply(data.flux[test], rng_test)
    x_test = encoder.encode(test_flux)[0]
    calib = evaluate_posterior(
        post, x_test, data.labels[test], model["n_calibration_samples"], seed=seed, keep_samples=True
    )
    x_gal = encoder.encode(deg.observation(prepared.flux))[0]
    samples = post.sample_labels(x_gal, model["n_samples"], seed=seed)[:, 0]
    checks = {"latents": matched.ood_check(x[: len(train)], x_test, x_gal, settings["ood"], seed)}
    # the reconstruction chi^2: the best fit among a few posterior draws' spectra (broadened like the galaxy), the
    # galaxy's against that of the degraded test spectra whose posterior means lie nearest the galaxy's
    n_draws = model["n_chi2_draws"]
    args = (post.names, reconstructor, deg, prepared.error)
    chi2_draws = matched.draws_chi2(prepared.flux, samples[:n_draws], *args)
    chi2_test = matched.best_draw_chi2(test_flux, calib["arrays"]["samples"][:n_draws], *args, progress=True)
    k, false_alarm = model["n_chi2_reference"], settings["ood"]["false_alarm"]
    test_means = calib["arrays"]["mean"]
    pick = matched.nearest_posterior_means(test_means, samples.mean(0), k)
    checks["reconstruction_chi2"] = {
        **matched.chi2_check(chi2_draws.min(), chi2_test[pick], false_alarm),
        "best_draw": dict(zip(post.names, samples[int(np.argmin(chi2_draws))].astype(float).tolist())),
        "false_alarm_rate_on_test_spectra": matched.chi2_false_alarm_rate(test_means, chi2_test, k, false_alarm),
        "synthetic_p95_whole_test_set": float(np.percentile(chi2_test, 95)),
        "n_draws": int(n_draws),
        "definition": "min over n_draws posterior draws of mean ((flux - model) / error)^2 over good pixels; model: "
        "the draw's spectrum broadened like the galaxy and scaled to its median; synthetic: the degraded test spectra "
        "whose posterior means lie nearest the galaxy's (standardised labels), same recipe; false-alarm rate: each "
        "test spectrum judged the same way against its nearest others",
    }
    return {"posterior": post, "samples": samples, "calibration": calib["metrics"], "checks": checks}


def samples_dataset(samples: np.ndarray, names, attrs: dict) -> xr.Dataset:
    return xr.Dataset(
        {"samples": (("sample", "parameter"), samples.astype(np.float32))},
        coords={"parameter": list(names)},
        attrs=attrs,
    )


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------


def credible_table(samples: np.ndarray, names, ppxf: dict | None) -> list[dict]:
    """One row per label: posterior median, 68 % and 95 % central intervals, pPXF's estimate and bootstrap sd."""
    rows = []
    for i, n in enumerate(names):
        s = samples[:, i]
        q = np.percentile(s, [2.5, 16, 50, 84, 97.5])
        row = {"label": n, "median": q[2], "low_68": q[1], "high_68": q[3], "low_95": q[0], "high_95": q[4]}
        if ppxf is not None and i < len(ppxf["labels"]):
            row.update(ppxf=float(ppxf["labels"][i]), ppxf_bootstrap_sd=float(ppxf["bootstrap_sd"][i]))
        rows.append({k: (float(v) if k != "label" else v) for k, v in row.items()})
    return rows


def table_markdown(galaxy: str, rows: list[dict], units: dict) -> str:
    lines = [
        f"# {galaxy}: posterior of the labels (matched ANPE) and pPXF",
        "",
        "| label | median | 68 % interval | 95 % interval | pPXF (bootstrap sd) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        u = units.get(r["label"], "")
        ppxf = f"{r['ppxf']:.2f} ({r['ppxf_bootstrap_sd']:.2f})" if "ppxf" in r else "—"
        lines.append(
            f"| {r['label']} | {r['median']:.2f} {u} | {r['low_68']:.2f} – {r['high_68']:.2f} | "
            f"{r['low_95']:.2f} – {r['high_95']:.2f} | {ppxf} |"
        )
    return "\n".join(lines) + "\n"


def write_json(obj, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return path


LABEL_UNITS = {"metallicity": "dex", "alpha": "dex"}


def library_systematic(cross_library: dict | None, snr: float) -> dict:
    """The cross-library test's result at the setting nearest the galaxy's S/N (clean above twice the highest S/N):
    per label the bias of the FASTAR-trained model on MILES spectra minus that on FASTAR spectra."""
    if cross_library is None:
        return {"measured": False, "note": "not measured: run `snakemake ssp_systematic` (observed.ssp_systematic)"}
    settings = {k: float(k[3:]) for k in cross_library["results"] if k.startswith("snr")}
    best = min(settings, key=lambda k: abs(np.log(settings[k] / snr))) if settings else "clean"
    if not settings or snr > 2 * max(settings.values()):
        best = "clean"
    res = cross_library["results"][best]
    return {
        "measured": True,
        "setting": best,
        "miles": f"{cross_library.get('miles_library')} ({cross_library.get('miles_isochrones')}, "
        f"{cross_library.get('miles_imf')})",
        "bias_miles_minus_fastar": {n: v["bias_miles_minus_fastar"] for n, v in res["systematic"].items()},
        "coverage_max_abs_deviation": {
            "fastar": res["fastar"]["coverage"]["max_abs_deviation_all"],
            "miles": res["miles"]["coverage"]["max_abs_deviation_all"],
        },
        "n_test": cross_library["n_test"],
        "definition": cross_library["definition"],
    }


def summarise(
    galaxy: str, prepared, samples, names, ppxf: dict, checks: dict, reconstructor, paths: dict, cross_library=None
) -> dict:
    """summary.json's content, the table (CSV, Markdown) and the three plots of one galaxy; ``cross_library``: the
    family's cross_library.json (the SSP-library systematic), when measured."""
    import csv

    from ..plots.observed import plot_mass_assembly, plot_observed_corner, plot_observed_reconstruction
    from ..plots.posterior import plot_posterior_coverage
    from .ppxf_baseline import cumulative_from_mass_weights
    from .reconstruction import cumulative_from_percentiles

    attrs = prepared.attrs
    units = {n: LABEL_UNITS.get(n, "Gyr") for n in names}
    rows = credible_table(samples, names, ppxf)
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    Path(paths["md"]).write_text(table_markdown(galaxy, rows, units))
    ood = checks["checks"]["latents"]
    chi2 = checks["checks"]["reconstruction_chi2"]
    cal = checks["calibration"]["coverage"]
    flag = lambda bad: "OUT OF DISTRIBUTION" if bad else "in distribution"  # noqa: E731
    ood_note = (
        f"latents {flag(ood['out_of_distribution'])} (kNN distance at the {ood['knn']['heldout_percentile']:.0f}th "
        f"percentile of held-out synthetic spectra, MMD p = {ood['mmd']['galaxy_pvalue']:.2f})\nreconstruction "
        f"{flag(chi2['out_of_distribution'])} (best-draw χ²/pixel {chi2['galaxy_chi2_per_pixel']:.1f}; nearest "
        f"synthetic spectra's 95th percentile {chi2['synthetic_p95']:.1f})\n"
        f"coverage of this posterior on degraded synthetic test spectra within "
        f"{cal['max_abs_deviation_all']:.2f} of nominal (per label: "
        f"{max(v for k, v in cal['max_abs_deviation'].items() if k != 'joint'):.2f})"
    )
    title = (
        f"{galaxy}: z = {attrs['redshift']:.5f}, σ = {attrs['sigma_kms']:.0f} km/s ({attrs['sigma_source']}), "
        f"S/N {attrs['snr_median']:.0f}"
    )
    plot_observed_corner(samples, names, paths["corner"], ppxf["labels"] if ppxf else None, title, ood_note)
    band = cal["binomial_band_95"]
    plot_posterior_coverage(
        cal["levels"],
        cal["empirical"],
        (band["low"], band["high"]),
        checks["calibration"]["n_test"],
        paths["calibration"],
        f"{galaxy}: coverage on {checks['calibration']['n_test']} test spectra degraded like it",
    )
    t_obs = reconstructor.t_obs
    time = np.linspace(reconstructor.time[0], t_obs, 400)
    pct = [i for i, n in enumerate(names) if n.startswith("t") and n[1:].isdigit()]
    curves = cumulative_from_percentiles(time, samples[:, pct], t_obs=t_obs, ends=reconstructor.ends)
    ppxf_curve = cumulative_from_mass_weights(ppxf["weights"], ppxf["ages"], ppxf["t_obs"], ppxf["t_start"])
    t50 = names.index("t50")
    systematic = library_systematic(cross_library, float(attrs["snr_median"]))
    if systematic["measured"]:
        b = systematic["bias_miles_minus_fastar"]
        sys_note = (
            f"SSP-library systematic (MILES − FASTAR test spectra through the family's posterior, "
            f"{systematic['setting'].replace('snr', 'S/N ')}): "
            f"t50 {b['t50']:+.1f} Gyr, [M/H] {b.get('metallicity', float('nan')):+.2f} dex"
        )
    else:
        sys_note = "SSP-library systematic: not measured"
    note = (
        f"t50: ANPE {np.median(samples[:, t50]):.2f} Gyr (68 %: {np.percentile(samples[:, t50], 16):.2f}–"
        f"{np.percentile(samples[:, t50], 84):.2f}), pPXF {ppxf['labels'][t50]:.2f} ± {ppxf['bootstrap_sd'][t50]:.2f}"
        f"\n{sys_note}"
    )
    plot_mass_assembly(time, curves, t_obs, ppxf_curve, paths["mass_assembly"], f"{galaxy}: mass assembly", note)
    deg = degradation_for(prepared)
    best_labels = np.array([chi2["best_draw"][n] for n in names])
    mean_model, best_model = deg.noiseless(reconstructor.from_labels(np.stack([samples.mean(0), best_labels]), names))
    pick = np.random.default_rng(0).choice(len(samples), min(200, len(samples)), replace=False)
    band = np.percentile(deg.noiseless(reconstructor.from_labels(samples[pick], names)), [16, 84], axis=0)
    good = prepared.good
    scale = np.median(prepared.flux[good])  # the models are normalised to median 1 over the good pixels
    plot_observed_reconstruction(
        prepared.wavelength,
        prepared.flux,
        mean_model * scale,
        band * scale,
        prepared.mask_reason,
        MASK_BITS,
        paths["reconstruction"],
        f"{galaxy}: spectra of the posterior (broadened like the galaxy) over the observed one",
        f"reconstruction {flag(chi2['out_of_distribution'])}: best of {chi2['n_draws']} posterior draws χ²/pixel "
        f"{chi2['galaxy_chi2_per_pixel']:.2f}; the {chi2['n_synthetic']} synthetic spectra degraded like it and nearest "
        f"in posterior mean: median {chi2['synthetic_median']:.2f}, 95th percentile {chi2['synthetic_p95']:.2f}",
        best=best_model * scale,
    )
    return {
        "galaxy": galaxy,
        "file": attrs["source_file"],
        "preparation": {k: v for k, v in attrs.items() if not k.startswith(("producer", "config_hash", "package_"))},
        "posterior": {r["label"]: {k: v for k, v in r.items() if k != "label"} for r in rows},
        "ppxf": {
            "labels": dict(zip(names, np.asarray(ppxf["labels"], float).tolist())),
            "bootstrap_sd": dict(zip(names, np.asarray(ppxf["bootstrap_sd"], float).tolist())),
            "sigma_kms": float(ppxf["sigma_kms"]),
            "regul": float(ppxf["regul"]),
            "chi2_per_pixel": float(ppxf["chi2"]) / len(ppxf["goodpixels"]),
        },
        "out_of_distribution": {
            "out_of_distribution": bool(ood["out_of_distribution"] or chi2["out_of_distribution"]),
            "latents": ood,
            "reconstruction_chi2": chi2["out_of_distribution"],
        },
        "reconstruction_chi2": chi2,
        "calibration_on_degraded_test": {
            "n_test": checks["calibration"]["n_test"],
            "r2": {n: v["r2"] for n, v in checks["calibration"]["labels"].items()},
            "coverage_max_abs_deviation": cal["max_abs_deviation"],
            "coverage_max_abs_deviation_all": cal["max_abs_deviation_all"],
        },
        "ssp_library_systematic": systematic,
        "assumptions": "non-parametric (dense_basis) SFH prior, FASTAR SSPs without an [alpha/Fe] axis, no dust, a "
        "flux calibration like the models' (the NPE sees the continuum shape; pPXF fits a multiplicative polynomial)",
    }

"""ANPE against the methods users would otherwise pick, on the same spectra: emcee (spectra.mcmc) and pPXF
(spectra.ppxf_baseline). Test spectra are drawn by seed from each family's test split and degraded like
observations at each setting (S/N, sigma): broadened from the models' 2.51 A to the instrument of
``evaluation.degraded`` (the told NPE's training copies carry it) plus the setting's velocity dispersion, one noise
realisation per setting shared by all methods; emcee's forward model is broadened the same way and pPXF's
templates to the instrument. Seed section 6 asks for the timing; the table adds accuracy and, for the two Bayesian
methods, the coverage of their 68 % intervals.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..seeding import derived_rng

log = logging.getLogger(__name__)

#: the labels the methods are compared on (t10 ... t90, [M/H])
LABELS = [f"t{p}" for p in range(10, 100, 10)] + ["metallicity"]


def single_alpha(grid, data):
    """The SSP grid at one [alpha/Fe] and the spectra of that [alpha/Fe] (emcee's model and pPXF's templates have
    no alpha axis): the grid's first alpha. Without an alpha axis: the grid and every spectrum."""
    if "alpha" not in grid.dims:
        return grid, np.ones(len(data), bool)
    alpha = float(grid["alpha"].values[0])
    return grid.sel(alpha=alpha), np.isclose(np.asarray(data.alpha, float), alpha)


def library_at_alpha(library, grid):
    """The native SSP library at the grid's [alpha/Fe] (linear in alpha between the native models, as the grid is
    built): emcee's forward model, whose [M/H] interpolation between the native models is the cubes'. Without an
    alpha axis: the library as it is."""
    if "alpha" not in library.dims:
        return library
    return library.interp(alpha=float(grid["alpha"].values))


def pick_spectra(data, n: int, seed: int, allowed=None) -> np.ndarray:
    """``n`` test spectra of a family (rows of its FamilyData), drawn by seed without replacement (among the
    ``allowed`` rows where given)."""
    rows = data.indices("test")
    if allowed is not None:
        rows = rows[np.asarray(allowed)[rows]]
    return np.sort(derived_rng(seed, "baselines", data.family).choice(rows, size=min(n, len(rows)), replace=False))


def comparison_settings(cfg: dict) -> list[dict]:
    """``baselines.settings`` as {snr, sigma_kms} (floats), in the config's order."""
    return [{"snr": float(s["snr"]), "sigma_kms": float(s.get("sigma_kms", 0.0))} for s in cfg["settings"]]


def setting_key(setting: dict) -> str:
    """The npz key of a setting: ``snr20_sigma200``."""
    return f"snr{setting['snr']:g}_sigma{setting['sigma_kms']:g}"


def setting_label(setting: dict) -> str:
    return f"S/N {setting['snr']:g}, σ {setting['sigma_kms']:g} km/s"


def degradation(setting: dict, wavelength, instrument: dict):
    """The setting's Degradation (``evaluation.fixed_degradation``: the instrument's FWHM and the setting's sigma on
    top of the models' resolution, white noise at the S/N of the median flux; no mask)."""
    from .evaluation import fixed_degradation

    return fixed_degradation({**setting, "blue_mask": False}, wavelength, instrument)


def degraded(flux: np.ndarray, deg, setting: dict, seed: int, family: str) -> tuple[np.ndarray, float]:
    """The spectra degraded at ``setting`` (median-normalised as the cubes are, so the noise sigma is 1 / snr)."""
    rng = derived_rng(seed, "baselines_noise", family, setting_key(setting))
    return deg.apply(flux.astype(float), rng).astype(float), 1.0 / setting["snr"]


def _interval_row(samples: np.ndarray) -> dict:
    """Point estimate (median) and the central 68 % interval of (S, L) samples."""
    lo, med, hi = np.percentile(samples, [16, 50, 84], axis=0)
    return {"estimate": med, "low": lo, "high": hi}


def run_anpe(flux, setting: dict, encoder, posterior, n_samples: int, seed: int) -> tuple[list[dict], dict]:
    """ANPE on every spectrum (at ``setting``, which a conditioned posterior is told), timed one spectrum at a time
    (encode + sample) and as one batch."""
    snr, sigma = setting["snr"], setting["sigma_kms"]

    def inputs(f):
        return posterior.inputs(encoder.encode(f)[0], snr, sigma)

    rows, seconds = [], []
    posterior.sample_labels(inputs(flux[:1]), 10, seed=seed)  # untimed warm-up
    for i in range(len(flux)):
        t = time.perf_counter()
        s = posterior.sample_labels(inputs(flux[i : i + 1]), n_samples, seed=seed + i)[:, 0]
        seconds.append(time.perf_counter() - t)
        rows.append({**_interval_row(s), "seconds": seconds[-1], "samples": s})
    t = time.perf_counter()
    posterior.sample_labels(inputs(flux), n_samples, seed=seed)
    batch = (time.perf_counter() - t) / len(flux)
    return rows, {"batch_seconds_per_spectrum": batch, "n_batch": len(flux)}


def emcee_prior(sfh_parametric: dict, metallicities) -> tuple[list, list]:
    """The training ranges as emcee's uniform prior: t0 and log10 tau of sfh.parametric, the SSP grid's [M/H]."""
    t0, lt = sfh_parametric["t0_gyr"], sfh_parametric["log10_tau_gyr"]
    z = np.asarray(metallicities, float)
    return [t0["start"], lt["start"], float(z.min())], [t0["stop"], lt["stop"], float(z.max())]


def run_emcee(flux, sigma, model, settings: dict, low, high, seed: int) -> list[dict]:
    """emcee on every spectrum (parametric family only: its model is the linear-exponential law)."""
    from .mcmc import fit_emcee

    rows = []
    for i in range(len(flux)):
        fit = fit_emcee(
            flux[i],
            sigma,
            model,
            low,
            high,
            seed=seed + i,
            n_walkers=settings["n_walkers"],
            chunk=settings["chunk"],
            max_steps=settings["max_steps"],
            min_tau_multiples=settings["min_tau_multiples"],
            moves=settings["moves"],
        )
        s = model.labels(*fit["samples"].T, percentiles=range(10, 100, 10))
        log.info(
            "emcee %d/%d: %d steps, tau %s, %.1f s, %.0f calls/s",
            i + 1,
            len(flux),
            fit["steps"],
            np.round(fit["tau"], 1),
            fit["seconds"],
            fit["calls"] / fit["seconds"],
        )
        rows.append(
            {
                **_interval_row(s),
                "seconds": fit["seconds"],
                "samples": s,
                "steps": fit["steps"],
                "tau_max": float(np.max(fit["tau"])),
                "converged": fit["converged"],
                "calls_per_second": fit["calls"] / fit["seconds"],
            }
        )
    return rows


def run_ppxf(wavelength, flux, sigma, templates, settings: dict, t_obs: float, t_start: float, seed: int):
    """pPXF on every spectrum; ``templates``: :func:`ppxf_baseline.load_templates` (once: not part of a fit's time)."""
    from .ppxf_baseline import fit_ppxf

    rows = []
    for i in range(len(flux)):
        fit = fit_ppxf(
            wavelength,
            flux[i],
            sigma,
            templates,
            t_obs=t_obs,
            t_start=t_start,
            percentiles=range(10, 100, 10),
            n_bootstrap=settings["n_bootstrap"],
            seed=seed + i,
        )
        log.info(
            "pPXF %d/%d: regul %.3g, %d fits, %.1f s", i + 1, len(flux), fit["regul"], fit["n_fits"], fit["seconds"]
        )
        sd = fit["bootstrap_sd"]
        rows.append(
            {
                "estimate": fit["labels"],
                "low": fit["labels"] - sd,
                "high": fit["labels"] + sd,
                "seconds": fit["seconds"],
                "regul": fit["regul"],
                "sigma_fitted_kms": fit["sigma_kms"],
            }
        )
    return rows


def emcee_summary(result: dict) -> dict:
    """Steps, autocorrelation times, convergence and likelihood calls per second of one setting's emcee runs."""
    return {
        "steps_median": float(np.median(result["steps"])),
        "tau_max_median": float(np.median(result["tau_max"])),
        "converged_fraction": float(np.mean(result["converged"])),
        "calls_per_second_median": float(np.median(result["calls_per_second"])),
    }


def table_rows(results: list[dict]) -> list[dict]:
    """One row per (family, setting, method): seconds per spectrum (median, range), median |error| per label and, for
    the Bayesian methods, the fraction of labels x spectra inside the 68 % interval."""
    out = []
    for r in results:
        est = np.array([row["estimate"] for row in r["rows"]])
        truth = r["truth"]
        err = np.abs(est - truth)
        inside = np.array([(row["low"] <= t) & (t <= row["high"]) for row, t in zip(r["rows"], truth)])
        sec = np.array([row["seconds"] for row in r["rows"]])
        out.append(
            {
                "family": r["family"],
                "snr": r["snr"],
                "sigma_kms": r.get("sigma_kms", 0.0),
                "method": r["method"],
                "n_spectra": len(sec),
                "seconds_median": float(np.median(sec)),
                "seconds_min": float(sec.min()),
                "seconds_max": float(sec.max()),
                **{f"abs_error_{lab}": float(np.median(err[:, i])) for i, lab in enumerate(LABELS)},
                "coverage_68": float(inside.mean()) if r["method"] != "ppxf" else float("nan"),
            }
        )
    return out


def ratios(rows: list[dict], anpe_training_seconds: dict) -> list[dict]:
    """ANPE's speed-up per spectrum over each other method, and the break-even number of spectra once ANPE's
    training (``anpe_training_seconds``: {family: encoder + NPE seconds}) is counted."""
    out = []
    for r in rows:
        if r["method"] == "anpe":
            continue
        same = ("family", "snr", "sigma_kms")
        anpe = next(a for a in rows if a["method"] == "anpe" and all(a[k] == r[k] for k in same))
        gain = r["seconds_median"] - anpe["seconds_median"]
        training = anpe_training_seconds.get(r["family"])
        out.append(
            {
                "family": r["family"],
                "snr": r["snr"],
                "sigma_kms": r["sigma_kms"],
                "method": r["method"],
                "speedup_per_spectrum": r["seconds_median"] / anpe["seconds_median"],
                "t50_error_ratio_method_to_anpe": r["abs_error_t50"] / anpe["abs_error_t50"],
                "break_even_spectra": (training / gain) if training and np.isfinite(training) and gain > 0 else None,
            }
        )
    return out


def markdown(rows: list[dict], speedups: list[dict], machine: str, training: dict) -> str:
    head = (
        "| family | S/N | σ (km/s) | method | spectra | s / spectrum (median, range) | t10 | t50 | t90 | [M/H] "
        "| 68 % cov. |"
    )
    md = [
        "# ANPE, emcee and pPXF on the same test spectra",
        "",
        f"Machine: {machine}. Absolute errors are medians over the spectra (Gyr; dex for [M/H]).",
        "",
        head,
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cov = "" if np.isnan(r["coverage_68"]) else f"{r['coverage_68']:.2f}"
        md.append(
            f"| {r['family']} | {r['snr']:g} | {r['sigma_kms']:g} | {r['method']} | {r['n_spectra']} "
            f"| {r['seconds_median']:.3g} "
            f"({r['seconds_min']:.3g}–{r['seconds_max']:.3g}) | {r['abs_error_t10']:.3f} | {r['abs_error_t50']:.3f} "
            f"| {r['abs_error_t90']:.3f} | {r['abs_error_metallicity']:.3f} | {cov} |"
        )
    md += [
        "",
        "| family | S/N | σ (km/s) | ANPE against | speed-up per spectrum | t50 error / ANPE's | break-even spectra |",
    ]
    md.append("|---|---|---|---|---|---|---|")
    for s in speedups:
        be = "—" if s["break_even_spectra"] is None else f"{s['break_even_spectra']:.0f}"
        md.append(
            f"| {s['family']} | {s['snr']:g} | {s['sigma_kms']:g} | {s['method']} | {s['speedup_per_spectrum']:.3g}× "
            f"| {s['t50_error_ratio_method_to_anpe']:.2f} | {be} |"
        )
    md += [
        "",
        f"ANPE's one-off training (encoder + NPE, seconds): {training}. The spectra are broadened to the "
        "instrument's resolution plus σ (emcee's forward model and pPXF's templates to the instrument's), white "
        "noise at the S/N of the median flux, one realisation shared by the methods. Break-even: the number of spectra after "
        "which training plus ANPE costs less than the other method. ANPE's time per spectrum is one spectrum at a "
        "time (encode + posterior samples); batched it is lower (summary.json). emcee samples (t0, log10 tau, "
        "[M/H]) of the linear-exponential law (parametric family only), run to >= 50 integrated autocorrelation "
        "times; pPXF follows its documented regularisation recipe with a wild bootstrap (its interval: +- 1 "
        "bootstrap sd, not a posterior, so no coverage is claimed).",
    ]
    return "\n".join(md) + "\n"


def fit_family(
    data,
    rows,
    encoder,
    posterior,
    grid,
    library,
    cfg: dict,
    sfh_parametric: dict,
    sps_file,
    training_seconds,
    instrument: dict,
):
    """Every method on the picked test spectra of one family at every setting: arrays for an npz (keys
    ``{method}/{setting_key}/{field}``), the truths and the example samples of the first spectrum. ``grid``: the
    interpolated SSP grid (emcee's [M/H] prior range); ``library``: the native models emcee's forward model
    interpolates between, as the cubes do (the grid's nodes are not the native ones: interpolating between them
    instead leaves residuals of up to 0.2 % rms at the true parameters, biasing emcee at S/N 100); ``instrument``:
    ``evaluation.degraded`` (its FWHM; the spectra, emcee's model and pPXF's templates are broadened to it)."""
    from .mcmc import LinexpSpectrumModel
    from .ppxf_baseline import load_templates

    family, seed = data.family, cfg["seed"]
    names = list(data.parameters)
    cols = [names.index(lab) for lab in LABELS]
    truth = data.labels[rows][:, cols].astype(float)
    t_obs = float(data.attrs["t_obs_gyr"])
    chosen = comparison_settings(cfg)
    out = {
        "labels": np.array(LABELS),
        "rows": rows,
        "truth": truth,
        "settings": np.array([[c["snr"], c["sigma_kms"]] for c in chosen]),
        "instrumental_fwhm_angstrom": np.array(float(instrument["instrumental_fwhm_angstrom"])),
        "training_seconds": np.array(training_seconds, float),
    }
    model = LinexpSpectrumModel.from_grid(library, sfh_parametric["time_gyr"]) if family == "parametric" else None
    if model is not None:
        low, high = emcee_prior(sfh_parametric, grid["metallicity"].values)
    # pPXF's templates broadened to the instrument (sps_lib), so its fitted sigma is the galaxy's; once per family
    templates = load_templates(sps_file, data.wavelength, fwhm_gal=float(instrument["instrumental_fwhm_angstrom"]))
    post_cols = [list(posterior.names).index(lab) for lab in LABELS]
    for setting in chosen:
        key = setting_key(setting)
        deg = degradation(setting, data.wavelength, instrument)
        flux, sigma = degraded(data.flux[rows], deg, setting, seed, family)
        anpe, batch = run_anpe(flux, setting, encoder, posterior, cfg["anpe"]["n_samples"], seed)
        out[f"anpe/{key}/batch_seconds_per_spectrum"] = np.array(batch["batch_seconds_per_spectrum"])
        methods = {"anpe": anpe}
        if model is not None:  # emcee's model is the linear-exponential law, broadened like the spectra (once)
            broadened = model.broadened(data.wavelength, deg.sigma_kms)
            methods["emcee"] = run_emcee(flux, sigma, broadened, cfg["emcee"], low, high, seed)
        methods["ppxf"] = run_ppxf(data.wavelength, flux, sigma, templates, cfg["ppxf"], t_obs, 0.0, seed)
        for method, res in methods.items():
            anpe_cols = post_cols if method == "anpe" else slice(None)  # emcee and pPXF give LABELS already
            for field in ("estimate", "low", "high"):
                out[f"{method}/{key}/{field}"] = np.array([r[field] for r in res])[:, anpe_cols]
            out[f"{method}/{key}/seconds"] = np.array([r["seconds"] for r in res])
            if "samples" in res[0]:
                out[f"{method}/{key}/samples0"] = res[0]["samples"][:, anpe_cols]
            for extra in ("steps", "tau_max", "converged", "calls_per_second", "regul", "sigma_fitted_kms"):
                if extra in res[0]:
                    out[f"{method}/{key}/{extra}"] = np.array([r[extra] for r in res])
        log.info("%s, %s: %d spectra, methods %s", family, setting_label(setting), len(rows), list(methods))
    return out


def load_results(paths) -> tuple[list[dict], dict, dict]:
    """The fit_family npz files -> per (family, setting, method) results, the example spectrum (the parametric
    family's first spectrum at the lowest S/N without extra sigma), the training times."""
    results, example, training = [], {}, {}
    for path in paths:
        with np.load(path) as d:
            family = str(Path(path).stem)
            labels = [str(v) for v in d["labels"]]
            training[family] = float(d["training_seconds"])
            chosen = [{"snr": float(a), "sigma_kms": float(b)} for a, b in d["settings"]]
            for setting in chosen:
                for method in ("anpe", "emcee", "ppxf"):
                    key = f"{method}/{setting_key(setting)}"
                    if f"{key}/estimate" not in d.files:
                        continue
                    est, low, high = (d[f"{key}/{k}"] for k in ("estimate", "low", "high"))
                    results.append(
                        {
                            "family": family,
                            **setting,
                            "method": method,
                            "labels": labels,
                            "truth": d["truth"],
                            "estimate": est,
                            "seconds": d[f"{key}/seconds"],
                            "rows": [
                                {"estimate": e, "low": lo, "high": hi, "seconds": s}
                                for e, lo, hi, s in zip(est, low, high, d[f"{key}/seconds"])
                            ],  # fmt: skip
                            **{
                                k.split("/")[-1]: d[k] for k in d.files if k.startswith(key + "/") and k.count("/") == 2
                            },
                        }
                    )
            if family == "parametric":
                setting = min(chosen, key=lambda c: (c["sigma_kms"], c["snr"]))
                key = setting_key(setting)
                example = {
                    "family": family,
                    **setting,
                    "row": int(d["rows"][0]),
                    "labels": labels,
                    "truth": d["truth"][0],
                    "samples": {
                        m: d[f"{m}/{key}/samples0"] for m in ("anpe", "emcee") if f"{m}/{key}/samples0" in d.files
                    },
                    "estimate": {"ppxf": d[f"ppxf/{key}/estimate"][0]},
                    "sd": {"ppxf": 0.5 * (d[f"ppxf/{key}/high"][0] - d[f"ppxf/{key}/low"][0])},
                }
    return results, example, training

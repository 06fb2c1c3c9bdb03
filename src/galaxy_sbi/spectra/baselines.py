"""ANPE against the methods users would otherwise pick, on the same spectra: emcee (spectra.mcmc) and pPXF
(spectra.ppxf_baseline). Test spectra are drawn by seed from each family's test split; each gets one noise
realisation per S/N, shared by all methods. Seed section 6 asks for the timing; the table adds accuracy and,
for the two Bayesian methods, the coverage of their 68 % intervals.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..seeding import derived_rng
from .realism import add_noise

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


def noisy(flux: np.ndarray, snr: float, seed: int, family: str) -> tuple[np.ndarray, float]:
    """The spectra at ``snr`` (S/N at the median flux; the cubes are median-normalised, so sigma = 1 / snr)."""
    return add_noise(flux.astype(float), snr, derived_rng(seed, "baselines_noise", family, int(snr))), 1.0 / snr


def _interval_row(samples: np.ndarray) -> dict:
    """Point estimate (median) and the central 68 % interval of (S, L) samples."""
    lo, med, hi = np.percentile(samples, [16, 50, 84], axis=0)
    return {"estimate": med, "low": lo, "high": hi}


def run_anpe(flux, snr: float, encoder, posterior, n_samples: int, seed: int) -> tuple[list[dict], dict]:
    """ANPE on every spectrum (at ``snr``, which a conditioned posterior is told), timed one spectrum at a time
    (encode + sample) and as one batch."""
    rows, seconds = [], []
    posterior.sample_labels(posterior.inputs(encoder.encode(flux[:1])[0], snr), 10, seed=seed)  # untimed warm-up
    for i in range(len(flux)):
        t = time.perf_counter()
        x = posterior.inputs(encoder.encode(flux[i : i + 1])[0], snr)
        s = posterior.sample_labels(x, n_samples, seed=seed + i)[:, 0]
        seconds.append(time.perf_counter() - t)
        rows.append({**_interval_row(s), "seconds": seconds[-1], "samples": s})
    t = time.perf_counter()
    posterior.sample_labels(posterior.inputs(encoder.encode(flux)[0], snr), n_samples, seed=seed)
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


def run_ppxf(wavelength, flux, sigma, sps_file, settings: dict, t_obs: float, t_start: float, seed: int):
    from .ppxf_baseline import fit_ppxf, load_templates

    templates = load_templates(sps_file, wavelength)  # once: not part of a fit's time
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
    """One row per (family, S/N, method): seconds per spectrum (median, range), median |error| per label and, for
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
        anpe = next(a for a in rows if a["method"] == "anpe" and a["family"] == r["family"] and a["snr"] == r["snr"])
        gain = r["seconds_median"] - anpe["seconds_median"]
        training = anpe_training_seconds.get(r["family"])
        out.append(
            {
                "family": r["family"],
                "snr": r["snr"],
                "method": r["method"],
                "speedup_per_spectrum": r["seconds_median"] / anpe["seconds_median"],
                "t50_error_ratio_method_to_anpe": r["abs_error_t50"] / anpe["abs_error_t50"],
                "break_even_spectra": (training / gain) if training and np.isfinite(training) and gain > 0 else None,
            }
        )
    return out


def markdown(rows: list[dict], speedups: list[dict], machine: str, training: dict) -> str:
    head = "| family | S/N | method | spectra | s / spectrum (median, range) | t10 | t50 | t90 | [M/H] | 68 % cov. |"
    md = [
        "# ANPE, emcee and pPXF on the same test spectra",
        "",
        f"Machine: {machine}. Absolute errors are medians over the spectra (Gyr; dex for [M/H]).",
        "",
        head,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cov = "" if np.isnan(r["coverage_68"]) else f"{r['coverage_68']:.2f}"
        md.append(
            f"| {r['family']} | {r['snr']:g} | {r['method']} | {r['n_spectra']} | {r['seconds_median']:.3g} "
            f"({r['seconds_min']:.3g}–{r['seconds_max']:.3g}) | {r['abs_error_t10']:.3f} | {r['abs_error_t50']:.3f} "
            f"| {r['abs_error_t90']:.3f} | {r['abs_error_metallicity']:.3f} | {cov} |"
        )
    md += ["", "| family | S/N | ANPE against | speed-up per spectrum | t50 error / ANPE's | break-even spectra |"]
    md.append("|---|---|---|---|---|---|")
    for s in speedups:
        be = "—" if s["break_even_spectra"] is None else f"{s['break_even_spectra']:.0f}"
        md.append(
            f"| {s['family']} | {s['snr']:g} | {s['method']} | {s['speedup_per_spectrum']:.3g}× "
            f"| {s['t50_error_ratio_method_to_anpe']:.2f} | {be} |"
        )
    md += [
        "",
        f"ANPE's one-off training (encoder + NPE, seconds): {training}. Break-even: the number of spectra after "
        "which training plus ANPE costs less than the other method. ANPE's time per spectrum is one spectrum at a "
        "time (encode + posterior samples); batched it is lower (summary.json). emcee samples (t0, log10 tau, "
        "[M/H]) of the linear-exponential law (parametric family only), run to >= 50 integrated autocorrelation "
        "times; pPXF follows its documented regularisation recipe with a wild bootstrap (its interval: +- 1 "
        "bootstrap sd, not a posterior, so no coverage is claimed).",
    ]
    return "\n".join(md) + "\n"


def fit_family(
    data, rows, encoder, posterior, grid, library, settings: dict, sfh_parametric: dict, sps_file, training_seconds
):
    """Every method on the picked test spectra of one family at every S/N: arrays for an npz (keys
    ``{method}/{snr}/{field}``), the truths and the example samples of the first spectrum. ``grid``: the
    interpolated SSP grid (emcee's [M/H] prior range); ``library``: the native models emcee's forward model
    interpolates between, as the cubes do (the grid's nodes are not the native ones: interpolating between them
    instead leaves residuals of up to 0.2 % rms at the true parameters, biasing emcee at S/N 100)."""
    from .mcmc import LinexpSpectrumModel

    family, seed = data.family, settings["seed"]
    names = list(data.parameters)
    cols = [names.index(lab) for lab in LABELS]
    truth = data.labels[rows][:, cols].astype(float)
    t_obs = float(data.attrs["t_obs_gyr"])
    out = {"labels": np.array(LABELS), "rows": rows, "truth": truth, "snr": np.array(settings["snr"], float)}
    out["training_seconds"] = np.array(training_seconds, float)
    model = LinexpSpectrumModel.from_grid(library, sfh_parametric["time_gyr"]) if family == "parametric" else None
    if model is not None:
        low, high = emcee_prior(sfh_parametric, grid["metallicity"].values)
    for snr in settings["snr"]:
        flux, sigma = noisy(data.flux[rows], snr, seed, family)
        anpe, batch = run_anpe(flux, snr, encoder, posterior, settings["anpe"]["n_samples"], seed)
        out[f"anpe/{snr:g}/batch_seconds_per_spectrum"] = np.array(batch["batch_seconds_per_spectrum"])
        methods = {"anpe": anpe}
        if model is not None:  # emcee's model is the linear-exponential law
            methods["emcee"] = run_emcee(flux, sigma, model, settings["emcee"], low, high, seed)
        methods["ppxf"] = run_ppxf(data.wavelength, flux, sigma, sps_file, settings["ppxf"], t_obs, 0.0, seed)
        post_cols = [list(posterior.names).index(lab) for lab in LABELS]
        for method, res in methods.items():
            anpe_cols = post_cols if method == "anpe" else slice(None)  # emcee and pPXF give LABELS already
            for key in ("estimate", "low", "high"):
                out[f"{method}/{snr:g}/{key}"] = np.array([r[key] for r in res])[:, anpe_cols]
            out[f"{method}/{snr:g}/seconds"] = np.array([r["seconds"] for r in res])
            if "samples" in res[0]:
                out[f"{method}/{snr:g}/samples0"] = res[0]["samples"][:, anpe_cols]
            for extra in ("steps", "tau_max", "converged", "calls_per_second", "regul"):
                if extra in res[0]:
                    out[f"{method}/{snr:g}/{extra}"] = np.array([r[extra] for r in res])
        log.info("%s, S/N %g: %d spectra, methods %s", family, snr, len(rows), list(methods))
    return out


def load_results(paths) -> tuple[list[dict], dict, dict]:
    """The fit_family npz files -> per (family, S/N, method) results, the example spectrum, the training times."""
    results, example, training = [], {}, {}
    for path in paths:
        with np.load(path) as d:
            family = str(Path(path).stem)
            labels = [str(v) for v in d["labels"]]
            training[family] = float(d["training_seconds"])
            for snr in d["snr"]:
                for method in ("anpe", "emcee", "ppxf"):
                    key = f"{method}/{snr:g}"
                    if f"{key}/estimate" not in d.files:
                        continue
                    est, low, high = (d[f"{key}/{k}"] for k in ("estimate", "low", "high"))
                    results.append(
                        {
                            "family": family,
                            "snr": float(snr),
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
            if family == "parametric":  # the example: the first spectrum at the lowest S/N
                snr = float(min(d["snr"]))
                example = {
                    "family": family,
                    "snr": snr,
                    "row": int(d["rows"][0]),
                    "labels": labels,
                    "truth": d["truth"][0],
                    "samples": {
                        m: d[f"{m}/{snr:g}/samples0"] for m in ("anpe", "emcee") if f"{m}/{snr:g}/samples0" in d.files
                    },
                    "estimate": {"ppxf": d[f"ppxf/{snr:g}/estimate"][0]},
                    "sd": {"ppxf": 0.5 * (d[f"ppxf/{snr:g}/high"][0] - d[f"ppxf/{snr:g}/low"][0])},
                }
    return results, example, training

"""Validation metrics of the chemistry graph's networks: the emulator's APE and the joint NPE's APE, SBC and TARP.

APE definitions follow the study: the emulator's median APE pooled over all outputs (its 1.6 % is on CHEMPY sets of
the Gaussian population prior); the NPE's median APE of the posterior mean of 1,000 samples pooled over ALL six
parameters, with the 25/75 % quartiles (its 9.1 (+16.6, -6.2) %), on sets of the population prior. The study's
numbers are quoted from :data:`galaxy_sbi.chem.report.STUDY_TARGETS`.
"""

from __future__ import annotations

import logging

import numpy as np

from ..inference import calibration as cal
from . import PARAMETER_NAMES
from .emulator import absolute_percentage_error, predict
from .npe import sample
from .report import STUDY_TARGETS

log = logging.getLogger(__name__)


def _quantiles(ape, q=(16, 50, 84)) -> dict:
    lo, mid, hi = np.percentile(ape, q)
    return {"median": mid, f"p{q[0]}": lo, f"p{q[2]}": hi}


def emulator_metrics(model, theta, x, split, labels) -> tuple[dict, np.ndarray]:
    """APE (validation box sets and population-prior sets) and RMSE per observable of a trained emulator.

    Returns (metrics, the APE of every validation set and observable, for the plot)."""
    val, pop = split == "validation", split == "population"
    pred_val = predict(model, theta[val])
    ape = absolute_percentage_error(pred_val, x[val])
    ape_pop = absolute_percentage_error(predict(model, theta[pop]), x[pop]) if pop.any() else np.full((1, 1), np.nan)
    log.info(
        "emulator APE on %d validation sets: median %.2f %%; on %d population-prior sets: %.2f %%",
        val.sum(),
        np.median(ape),
        pop.sum(),
        np.median(ape_pop),
    )
    metrics = {
        "n_train": int((split == "train").sum()),
        "n_validation": int(val.sum()),
        "n_population": int(pop.sum()),
        "ape_percent": _quantiles(ape),
        "ape_median_per_observable": {lab: float(np.median(ape[:, i])) for i, lab in enumerate(labels)},
        "ape_percent_population": _quantiles(ape_pop),
        "ape_median_per_observable_population": (
            {lab: float(np.median(ape_pop[:, i])) for i, lab in enumerate(labels)} if pop.any() else {}
        ),
        "rmse_dex": {
            lab: float(np.sqrt(np.mean((pred_val[:, i] - x[val][:, i]) ** 2))) for i, lab in enumerate(labels)
        },
        "note": "ape_percent: the uniform +-5 sigma box (where the NPE uses the emulator); ape_percent_population: the "
        "Gaussian population prior, the distribution of the study's 1.6 % (its CHEMPY training and validation "
        "sets at the seed's time)",
        "target_median_percent": STUDY_TARGETS["emulator_ape_median_percent"],
        "training_time_s": model.training_time_s,
        "history": model.history,
    }
    return metrics, ape


def evaluation_sets(simulations, n: int, rng: np.random.Generator, splits=("validation", "population")) -> dict:
    """Up to ``n`` (theta, abundances) pairs of each split of the chem_collect netCDF, drawn without replacement."""
    import xarray as xr

    sets = {}
    with xr.open_dataset(simulations) as ds:
        for split in splits:
            rows = np.flatnonzero(ds.split.values == split)
            pick = rng.choice(rows, size=min(n, len(rows)), replace=False)
            sets[split] = ds.theta.values[pick], ds.abundance.values[pick]
    return sets


def joint_npe_metrics(
    posterior,
    summary: dict,
    theta,
    x,
    theta_pop,
    x_pop,
    noise_dex: float,
    n_samples: int,
    seed: int,
    rng: np.random.Generator,
) -> tuple[dict, dict]:
    """APE on the box's validation sets and on population-prior sets; SBC and TARP on the sets of the NPE's
    training prior (from the samples already drawn: sbi's run_sbc / run_tarp would redraw them through rejection
    sampling). Returns (metrics, calibration arrays for the plots)."""
    x = x + rng.normal(0.0, noise_dex, x.shape)
    x_pop = x_pop + rng.normal(0.0, noise_dex, x_pop.shape)
    samples = sample(posterior, x, n_samples, seed=seed)
    ape = absolute_percentage_error(samples.mean(0), theta)
    per = {name: _quantiles(ape[:, i]) for i, name in enumerate(PARAMETER_NAMES)}
    seed_like, samples_pop = {}, None
    if len(theta_pop):
        samples_pop = sample(posterior, x_pop, n_samples, seed=seed + 1)
        ape_pop = absolute_percentage_error(samples_pop.mean(0), theta_pop)
        seed_like = {
            **_quantiles(ape_pop, (25, 50, 75)),
            "n": len(theta_pop),
            "globals_median": float(np.median(ape_pop[:, :2])),
            "per_parameter_median": dict(zip(PARAMETER_NAMES, np.median(ape_pop, 0).tolist())),
        }
        log.info(
            "NPE APE, all parameters pooled, population-prior sets (the study's definition): median %.1f %%",
            seed_like["median"],
        )
    training_prior = summary.get("training_prior", "box")
    if training_prior == "population" and samples_pop is not None:
        cal_samples, cal_theta, cal_sets = samples_pop, theta_pop, "population"
    else:
        cal_samples, cal_theta, cal_sets = samples, theta, "validation"
    ranks = cal.sbc_ranks_from_samples(cal_samples, cal_theta)
    tarp = cal.tarp_from_samples(cal_samples, cal_theta, seed=seed)
    metrics = {
        "n_validation": len(theta),
        "n_posterior_samples": n_samples,
        "ape_percent_all": _quantiles(ape),
        "ape_percent": per,
        "ape_percent_all_population": seed_like,
        "ape_percent_globals": {"median": float(np.median(ape[:, :2]))},
        "target_median_percent": STUDY_TARGETS["npe_ape_median_percent"],
        "sbc_ks_pvalue": dict(zip(PARAMETER_NAMES, cal.sbc_uniformity_pvalues(ranks, n_samples).tolist())),
        "tarp_atc": tarp["atc"],
        "tarp_ks_pvalue": tarp["ks_pvalue"],
        "training": summary,
        "training_prior": training_prior,
        "sbc_tarp_sets": cal_sets,
        "note": "validation sets: accepted simulator runs of the uniform box; population sets: accepted runs of the "
        "population prior. SBC/TARP use the sets of the NPE's training prior (sbc_tarp_sets); both hold only "
        "accepted runs, where real stars live",
    }
    return metrics, {"ranks": ranks, "tarp": tarp, "sets": cal_sets}

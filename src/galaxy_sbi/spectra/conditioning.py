"""Posteriors that know what they were given: matched to one degradation, or conditioned on it.

At each fixed degradation of ``evaluation.degraded`` (S/N x sigma x blue-end mask) three posteriors of one family
are compared on the same degraded off-grid test spectra (the same noise draws as the evaluation's):

- ``amortised``: the family's posterior (no knowledge of the degradation);
- ``matched``: an NPE per setting, retrained on the family's training spectra degraded exactly like it (the paper
  retrained for one velocity dispersion; the observed galaxies' posteriors are built this way);
- ``conditioned``: one NPE whose input is the latents plus the setting (log10 S/N, sigma / 100 km/s, mask flag),
  trained on the training spectra under random degradations (``copies`` per spectrum, one drawn setting per chunk
  of spectra: a chunk shares its broadening kernel).

The encoder is the family's throughout; only the NPEs differ, and their training times are the compute compared.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..seeding import derived_seed
from .evaluation import degraded_test_latents, fixed_degradation
from .matched import degraded_latents, encoder_fill
from .posterior import evaluate_posterior, train_label_posterior

log = logging.getLogger(__name__)


#: what the NPE of a noise-free spectrum is told: log10 S/N = 3 (S/N 1000), above every noisy training copy's
CLEAN_LOG10_SNR = 3.0
#: the inputs a conditioned NPE can be given beside the latents, in this order
INPUTS = ("log10_snr", "sigma_100kms", "blue_mask")
#: spectra degraded under one random setting at a time (they share one broadening kernel)
CHUNK = 128


def log10_snr(snr) -> np.ndarray:
    """log10 S/N as a conditioned NPE reads it; None or inf (noise-free) and S/N above 1000 give CLEAN_LOG10_SNR."""
    s = np.asarray(np.inf if snr is None else snr, float)
    if np.any(s <= 0):
        raise ValueError("S/N must be positive")
    return np.minimum(np.log10(s), CLEAN_LOG10_SNR)


def conditioning_columns(inputs, n: int, snr=None, sigma_kms=0.0, blue_mask=False) -> np.ndarray:
    """(n, len(inputs)) columns of the named ``inputs`` (of INPUTS) for n spectra; each value a scalar or one per
    spectrum. snr None: noise-free."""
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise ValueError(f"unknown conditioning inputs {sorted(unknown)} (known: {', '.join(INPUTS)})")
    values = {
        "log10_snr": log10_snr(snr),
        "sigma_100kms": np.asarray(sigma_kms, float) / 100.0,
        "blue_mask": np.asarray(blue_mask, float),
    }
    if not inputs:
        return np.empty((n, 0))
    return np.column_stack([np.broadcast_to(values[k], (n,)) for k in inputs]).reshape(n, len(inputs))


def with_conditioning(latents, inputs, snr=None, sigma_kms=0.0, blue_mask=False) -> np.ndarray:
    """The latents followed by the :func:`conditioning_columns` of ``inputs`` (in the latents' dtype)."""
    latents = np.asarray(latents)
    extra = conditioning_columns(inputs, len(latents), snr, sigma_kms, blue_mask)
    return np.column_stack([latents, extra.astype(latents.dtype)])


def conditioning_vector(setting: dict) -> np.ndarray:
    """What the study's conditioned NPE is told about a spectrum: log10 S/N, sigma in units of 100 km/s, the mask."""
    return conditioning_columns(INPUTS, 1, setting["snr"], setting["sigma_kms"], setting["blue_mask"])[0]


def _with_conditioning(latents: np.ndarray, setting: dict) -> np.ndarray:
    return with_conditioning(latents, INPUTS, setting["snr"], setting["sigma_kms"], setting["blue_mask"])


def random_settings(n: int, cfg: dict, rng: np.random.Generator) -> list[dict]:
    """n settings drawn from the conditioned NPE's training ranges: S/N log-uniform, sigma uniform, mask Bernoulli."""
    lo, hi = np.log10(cfg["snr_range"])
    return [
        {
            "snr": float(10 ** rng.uniform(lo, hi)),
            "sigma_kms": float(rng.uniform(*cfg["sigma_kms_range"])),
            "blue_mask": bool(rng.uniform() < cfg["mask_probability"]),
        }
        for _ in range(n)
    ]


def conditioned_training_set(
    encoder,
    flux,
    labels,
    wavelength,
    degraded_cfg,
    cfg: dict,
    seed: int,
    batch=512,
    stream=("conditioning", "training"),
):
    """(x = [latents, conditioning], labels) of ``cfg['copies']`` random degradations of every training spectrum;
    ``stream``: the names of its random stream (:func:`derived_seed`). With ``cfg['error_shapes']`` (n, n_wavelength;
    :mod:`.error_spectra`) each chunk's noise takes one of them to a power uniform in ``cfg['error_power_range']``
    (0: white), else the noise is white."""
    from .error_spectra import random_shape

    shapes = cfg.get("error_shapes")
    fill = encoder_fill(encoder)
    rng = np.random.default_rng(derived_seed(seed, *stream))
    xs, ls = [], []
    chunk = int(cfg.get("chunk", CHUNK))
    for copy in range(int(cfg["copies"])):
        order = rng.permutation(len(flux))  # a chunk mixes SFHs and cells
        for start in range(0, len(flux), chunk):
            rows = order[start : start + chunk]
            setting = random_settings(1, cfg, rng)[0]
            chunk_cfg = degraded_cfg
            if shapes is not None and len(shapes):
                chunk_cfg = {**degraded_cfg, "error_shape": random_shape(shapes, cfg["error_power_range"], rng)[0]}
            degradation = fixed_degradation(setting, wavelength, chunk_cfg, fill)
            xs.append(_with_conditioning(degraded_latents(encoder, flux[rows], degradation, 1, rng, batch), setting))
            ls.append(labels[rows])
        log.info("conditioned training set: copy %d of %d degraded", copy + 1, cfg["copies"])
    return np.concatenate(xs), np.concatenate(ls)


def npe_training_set(x, labels, flux, wavelength, encoder, noise: dict, seed: int, family: str, batch: int = 512):
    """The family NPE's training set with the observation in the simulator (``npe.noise``): the clean latents plus
    ``noise['copies']`` degraded copies of every training spectrum, and what the NPE is told (``noise['inputs']``).

    - ``[]``: white-noise copies (S/N log-uniform in ``snr_range``), the NPE not told which is which;
    - ``[log10_snr]``: the same copies, the NPE told each spectrum's log10 S/N;
    - all of :data:`INPUTS`: observation-like copies, one random setting per :data:`CHUNK` spectra (S/N log-uniform,
      sigma uniform in ``sigma_kms_range`` on top of the instrument's FWHM, the rest frame below
      ``instrument['blue_mask_below_angstrom']`` masked with ``mask_probability``), the NPE told the setting.

    Clean rows are told noise-free, sigma 0, no mask. Returns (x, labels, the names of x's conditioning columns)."""
    from .latents import noise_aware_training_set

    inputs = list(noise["inputs"])
    if inputs not in ([], ["log10_snr"], list(INPUTS)):
        raise ValueError(f"npe.noise.inputs must be [], [log10_snr] or {list(INPUTS)}, got {inputs}")
    if len(inputs) < len(INPUTS):
        x_all, l_all, snr = noise_aware_training_set(x, labels, flux, encoder, noise, seed, family, batch)
        return with_conditioning(x_all, inputs, snr), l_all, inputs
    clean = with_conditioning(x, inputs)
    x_deg, l_deg = conditioned_training_set(
        encoder, flux, labels, wavelength, noise["instrument"], noise, seed, batch, stream=("npe_noise", family)
    )
    log.info(
        "%d clean + %d observation-like latent vectors (S/N %g-%g, sigma %g-%g km/s, mask probability %g)",
        len(x),
        len(x_deg),
        *noise["snr_range"],
        *noise["sigma_kms_range"],
        noise["mask_probability"],
    )
    return np.concatenate([clean, x_deg]).astype(x.dtype), np.concatenate([labels, l_deg]), inputs


def _metrics(post, x, labels, n_samples, seed) -> dict:
    m = evaluate_posterior(post, x, labels, n_samples, seed=seed, joint=False, dequantise=False)["metrics"]
    return {
        "r2": {n: v["r2"] for n, v in m["labels"].items()},
        "coverage_max_abs_deviation": m["coverage"]["max_abs_deviation"],
        "coverage_max_abs_deviation_all": m["coverage"]["max_abs_deviation_all"],
        "mean_posterior_std": m["mean_posterior_std"],
    }


def compare(
    amortised,
    encoder,
    train_flux,
    train_labels,
    test_flux,
    test_labels,
    wavelength,
    names,
    npe_settings: dict,
    degraded_cfg: dict,
    cfg: dict,
    n_samples: int,
    evaluation_seed: int,
    seed: int,
    batch: int = 512,
) -> dict:
    """The three posteriors at every fixed setting; the NPEs' training times."""
    fill = encoder_fill(encoder)
    # the evaluation's degraded spectra and noise draws (evaluation.evaluate_degraded)
    settings, test_x = zip(*degraded_test_latents(encoder, test_flux, wavelength, degraded_cfg, evaluation_seed, batch))

    start = time.perf_counter()
    x_c, l_c = conditioned_training_set(encoder, train_flux, train_labels, wavelength, degraded_cfg, cfg, seed, batch)
    degrade_s = time.perf_counter() - start
    start = time.perf_counter()
    conditioned = train_label_posterior(l_c, x_c, names, npe_settings, seed=seed)
    out = {
        "conditioned": {
            "n_train": int(len(x_c)),
            "degrade_and_encode_s": degrade_s,
            "npe_training_s": time.perf_counter() - start,
            "inputs": "latents + (log10 S/N, sigma / 100 km/s, blue-end mask flag)",
        },
        "matched": {"n_train_each": int(len(train_flux)), "degrade_and_encode_s": 0.0, "npe_training_s": 0.0},
        "settings": [],
    }
    log.info("conditioned NPE: %d training vectors, %.0f s", len(x_c), out["conditioned"]["npe_training_s"])
    for k, setting in enumerate(settings):
        name = setting["name"]
        rng = np.random.default_rng(derived_seed(seed, "conditioning", "matched", str(k)))
        start = time.perf_counter()
        degradation = fixed_degradation(setting, wavelength, degraded_cfg, fill)
        x_m = degraded_latents(encoder, train_flux, degradation, 1, rng, batch)
        out["matched"]["degrade_and_encode_s"] += time.perf_counter() - start
        start = time.perf_counter()
        matched = train_label_posterior(train_labels, x_m, names, npe_settings, seed=seed)
        out["matched"]["npe_training_s"] += time.perf_counter() - start
        cond_x = _with_conditioning(test_x[k], setting)
        amortised_x = amortised.inputs(test_x[k], setting["snr"], setting["sigma_kms"], setting["blue_mask"])
        row = {
            **setting,
            "amortised": _metrics(amortised, amortised_x, test_labels, n_samples, evaluation_seed),
            "matched": _metrics(matched, test_x[k], test_labels, n_samples, evaluation_seed),
            "conditioned": _metrics(conditioned, cond_x, test_labels, n_samples, evaluation_seed),
        }
        out["settings"].append(row)
        log.info(
            "%s: coverage max dev amortised %.3f, matched %.3f, conditioned %.3f; t50 R2 %.3f / %.3f / %.3f",
            name,
            *(row[p]["coverage_max_abs_deviation_all"] for p in ("amortised", "matched", "conditioned")),
            *(row[p]["r2"]["t50"] for p in ("amortised", "matched", "conditioned")),
        )
    for p in ("matched", "conditioned"):
        devs = [r[p]["coverage_max_abs_deviation_all"] for r in out["settings"]]
        out[p]["coverage_max_abs_deviation_worst"] = float(max(devs))
        out[p]["coverage_max_abs_deviation_median"] = float(np.median(devs))
        out[p]["settings_within_0.05"] = int(sum(d <= 0.05 for d in devs))
        out[p]["compute_s"] = out[p]["degrade_and_encode_s"] + out[p]["npe_training_s"]
    out["definition"] = (
        "the same degraded off-grid test spectra (the evaluation's noise draws) through the family's encoder; "
        "amortised: the family's posterior; matched: one NPE per setting on the training spectra degraded like it; "
        "conditioned: one NPE on random degradations with the setting as extra inputs. compute_s: degrading + "
        "encoding the training spectra and training the NPEs (this machine)"
    )
    return out

"""A posterior matched to one observation: synthetic spectra degraded exactly like it, an NPE trained on them,
its calibration on degraded test spectra, and the checks that say whether the observation looks like them.

The paper retrains for the velocity dispersion of the galaxies it applies the model to; here every degradation of
the observation is copied onto the family's training spectra: the broadening from the models' 2.51 Å FWHM to the
observation's (galaxy sigma and the instrument's line-spread function, per pixel, ``ppxf_util.varsmooth``), its
mask, its error spectrum as Gaussian noise (``noise_copies`` realisations per training spectrum) and the same
normalisation. The encoder is the family's (trained on clean spectra); only the NPE is retrained on the latents of
the degraded spectra, so the posterior is calibrated for this observation whatever the encoder keeps of it.
"""

from __future__ import annotations

import logging

import numpy as np

from .observation import C_KMS, FWHM_PER_SIGMA

log = logging.getLogger(__name__)

MODEL_FWHM_ANGSTROM = 2.51


def broadening_kms(wavelength, sigma_galaxy_kms: float, instrumental_fwhm, model_fwhm: float = MODEL_FWHM_ANGSTROM):
    """Gaussian sigma (km/s, per pixel) that takes a model spectrum to the observation:
    sqrt(sigma_galaxy^2 + sigma_instrument^2 - sigma_model^2), 0 where the instrument is sharper than the models
    (an unknown instrument, NaN, counts as the models' resolution)."""
    w = np.asarray(wavelength, float)
    fwhm = np.where(np.isfinite(instrumental_fwhm), instrumental_fwhm, model_fwhm)
    s_inst = fwhm / FWHM_PER_SIGMA / w * C_KMS
    s_model = model_fwhm / FWHM_PER_SIGMA / w * C_KMS
    return np.sqrt(np.clip(sigma_galaxy_kms**2 + s_inst**2 - s_model**2, 0.0, None))


def broaden_varying(flux: np.ndarray, wavelength, sigma_kms) -> np.ndarray:
    """Gaussian convolution of spectra (N, n_wavelength) with a per-pixel sigma in km/s (ppxf's varsmooth on
    ln lambda, where a velocity is a constant width)."""
    from ppxf.ppxf_util import varsmooth

    flux = np.atleast_2d(np.asarray(flux, float))
    sigma = np.asarray(sigma_kms, float) / C_KMS
    if np.all(sigma == 0):
        return flux.copy()
    x = np.log(np.asarray(wavelength, float))
    return np.asarray(varsmooth(x, flux.T, sigma)).T


class Degradation:
    """The observation's degradation: broadening (km/s per pixel), mask, error spectrum (units of the median)."""

    def __init__(self, wavelength, sigma_kms, good, error, fill=None):
        self.wavelength = np.asarray(wavelength, float)
        self.sigma_kms = np.broadcast_to(np.asarray(sigma_kms, float), self.wavelength.shape)
        self.good = np.asarray(good, bool)
        self.error = np.where(self.good, np.asarray(error, float), 0.0)
        # what masked pixels hold in the encoder's input: its training mean there (0 after its pixel scaling),
        # the least informative value, the same for the observation and every synthetic spectrum
        self.fill = np.ones(len(self.wavelength)) if fill is None else np.asarray(fill, float)

    def noiseless(self, flux: np.ndarray) -> np.ndarray:
        """Broadened and normalised by the median over the good pixels (no noise, no fill)."""
        b = broaden_varying(flux, self.wavelength, self.sigma_kms)
        return b / np.median(b[:, self.good], axis=1, keepdims=True)

    def apply(self, flux: np.ndarray, rng: np.random.Generator, broadened: np.ndarray | None = None) -> np.ndarray:
        """Spectra degraded like the observation: broadened, noise from its error spectrum, normalised again by the
        median over good pixels (as the observation was), masked pixels filled. float32."""
        b = self.noiseless(flux) if broadened is None else broadened
        noisy = b + self.error * rng.standard_normal(b.shape)
        noisy /= np.median(noisy[:, self.good], axis=1, keepdims=True)
        return np.where(self.good, noisy, self.fill).astype(np.float32)

    def observation(self, flux: np.ndarray) -> np.ndarray:
        """The prepared observed flux as the encoder sees it (masked pixels filled)."""
        return np.where(self.good, flux, self.fill)[None].astype(np.float32)


def encoder_fill(encoder) -> np.ndarray | None:
    """The encoder's per-pixel training mean when it standardises pixels, else None (fill with 1, the median)."""
    if getattr(encoder.hparams, "input_scaling", "none") == "pixel":
        return encoder.flux_mean.detach().cpu().numpy().astype(float)
    return None


def degraded_latents(encoder, flux, degradation: Degradation, copies: int, rng, batch_size: int = 512) -> np.ndarray:
    """Latents (copies * N, latent_dim) of ``copies`` noise realisations of every spectrum, copy-major."""
    broadened = degradation.noiseless(flux)
    out = []
    for _ in range(copies):
        out.append(encoder.encode(degradation.apply(flux, rng, broadened), batch_size=batch_size)[0])
    return np.concatenate(out)


def chi2_per_pixel(observed, model, error, good) -> float:
    """Mean ((observed - model) / error)^2 over the good pixels, the model scaled to the observed median there."""
    o, m, e = (np.asarray(a, float) for a in (observed, model, error))
    g = np.asarray(good, bool)
    m = m * np.median(o[g]) / np.median(m[g])
    return float(np.mean(((o[g] - m[g]) / e[g]) ** 2))


def draws_chi2(flux, draws, names, reconstructor, degradation: Degradation, error) -> np.ndarray:
    """chi^2 per pixel of one spectrum against each of its posterior draws' spectra (N_draws, n_labels), broadened
    like the observation; its minimum is the reconstruction check's statistic. The spectrum of the posterior-mean
    labels is no fit: the labels do not fix the SFH (its shape between percentiles, the last 10 %), and a broad
    posterior's mean is a history none of its draws has; on degraded test spectra its chi^2 has a tail (95th
    percentile ~20) that passes a 20 % blue deficit."""
    spectra = degradation.noiseless(reconstructor.from_labels(draws, names))
    return np.array([chi2_per_pixel(flux, m, error, degradation.good) for m in spectra])


def best_draw_chi2(flux, draws, names, reconstructor, degradation: Degradation, error, progress=False) -> np.ndarray:
    """The reconstruction check's statistic for many spectra (N, n_pixel): the minimum of draws_chi2 over each
    spectrum's draws (S, N, n_labels). (N,)"""
    rows = enumerate(flux)
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(flux), desc="chi^2 reference", unit="spectrum")
    return np.array([draws_chi2(f, draws[:, i], names, reconstructor, degradation, error).min() for i, f in rows])


def nearest_posterior_means(test_means: np.ndarray, galaxy_mean: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` test spectra whose posterior means lie nearest the galaxy's, in units of the test means'
    standard deviations: the reference for the galaxy's reconstruction chi^2.

    How well even the best posterior draw fits depends on where in label space the posterior sits (a young
    component's light comes from mass the labels do not describe), so the whole test set's reference is too tight
    there and too loose elsewhere. Conditioning on the posterior mean, a statistic of the data, keeps the false-alarm
    rate under the null (the galaxy is a member of the family, degraded like it)."""
    z, sd = _standardised(test_means)
    d = np.sqrt(((z - np.asarray(galaxy_mean, float) / sd) ** 2).sum(1))
    return np.argsort(d, kind="stable")[: min(k, len(z))]


def chi2_false_alarm_rate(test_means: np.ndarray, test_chi2: np.ndarray, k: int, false_alarm: float) -> float:
    """The conditional chi^2 check's false-alarm rate measured on the test spectra themselves: each one judged, as a
    galaxy is, against the ``k`` others nearest it in posterior mean."""
    from scipy.spatial.distance import cdist

    z, _ = _standardised(test_means)
    d = cdist(z, z)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1, kind="stable")[:, : min(k, len(z) - 1)]
    chi2 = np.asarray(test_chi2, float)
    return float(np.mean(chi2 > np.quantile(chi2[nearest], 1 - false_alarm, axis=1)))


def _standardised(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, float)
    sd = x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return x / sd, sd


def chi2_check(galaxy_chi2: float, reference_chi2: np.ndarray, false_alarm: float) -> dict:
    """The galaxy's chi^2 per pixel against its reference's: flagged above the (1 - false_alarm) quantile."""
    ref = np.asarray(reference_chi2, float)
    threshold = float(np.quantile(ref, 1 - false_alarm))
    return {
        "galaxy_chi2_per_pixel": float(galaxy_chi2),
        "synthetic_median": float(np.median(ref)),
        "synthetic_p95": float(np.percentile(ref, 95)),
        "synthetic_percentile_of_galaxy": float(100 * np.mean(ref < galaxy_chi2)),
        "threshold": threshold,
        "out_of_distribution": bool(galaxy_chi2 > threshold),
        "n_synthetic": int(len(ref)),
    }


def knn_distance(reference: np.ndarray, query: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean distance of each query latent to its k nearest reference latents, in the reference's standardised units."""
    from sklearn.neighbors import NearestNeighbors

    mu, sd = reference.mean(0), reference.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    nn = NearestNeighbors(n_neighbors=k).fit((reference - mu) / sd)
    return nn.kneighbors((np.atleast_2d(query) - mu) / sd)[0].mean(1)


def misspecification_mmd(reference: np.ndarray, query: np.ndarray, n_shuffle: int, max_samples: int, seed: int):
    """sbi's MMD misspecification test of one latent vector against the reference latents: its p-value."""
    import torch
    from sbi.diagnostics import calc_misspecification_mmd

    torch.manual_seed(seed)
    p, _ = calc_misspecification_mmd(
        torch.as_tensor(np.atleast_2d(query), dtype=torch.float32),
        torch.as_tensor(reference, dtype=torch.float32),
        mode="x_space",
        n_shuffle=n_shuffle,
        max_samples=max_samples,
    )
    return float(p)


def ood_check(train_latents, heldout_latents, galaxy_latent, settings: dict, seed: int) -> dict:
    """The galaxy's latent against the training latents: a kNN-distance test whose threshold is the
    ``1 - false_alarm`` quantile of held-out degraded synthetic spectra, and sbi's MMD p-value (also calibrated on
    held-out spectra: the ``false_alarm`` quantile of theirs)."""
    fa = settings["false_alarm"]
    d = knn_distance(train_latents, np.vstack([heldout_latents, galaxy_latent]), settings["k_neighbours"])
    d_ref, d_gal = d[:-1], float(d[-1])
    rng = np.random.default_rng(seed)
    ref = train_latents[rng.choice(len(train_latents), min(len(train_latents), settings["mmd_max_samples"]), False)]
    mmd = dict(n_shuffle=settings["mmd_n_shuffle"], max_samples=settings["mmd_max_samples"])
    pick = rng.choice(len(heldout_latents), min(len(heldout_latents), settings["mmd_n_calibration"]), False)
    p_ref = np.array([misspecification_mmd(ref, heldout_latents[i], seed=seed + j, **mmd) for j, i in enumerate(pick)])
    p_gal = misspecification_mmd(ref, galaxy_latent, seed=seed, **mmd)
    knn_threshold = float(np.quantile(d_ref, 1 - fa))
    p_threshold = float(np.quantile(p_ref, fa))
    return {
        "knn": {
            "k": settings["k_neighbours"],
            "galaxy_distance": d_gal,
            "threshold": knn_threshold,
            "heldout_percentile": float(100 * np.mean(d_ref < d_gal)),
            "out_of_distribution": bool(d_gal > knn_threshold),
        },
        "mmd": {
            "galaxy_pvalue": p_gal,
            "threshold": p_threshold,
            "heldout_pvalues_median": float(np.median(p_ref)),
            "n_calibration": int(len(p_ref)),
            "out_of_distribution": bool(p_gal < p_threshold),
        },
        "false_alarm_rate": fa,
        "out_of_distribution": bool(d_gal > knn_threshold or p_gal < p_threshold),
        "definition": (
            "latents of the observation against those of the degraded training spectra; thresholds: the held-out "
            f"degraded test spectra's {100 * (1 - fa):g}th percentile of the kNN distance and {100 * fa:g}th of the "
            "MMD p-value"
        ),
    }

"""Latent vectors of every spectrum, and the numbers behind their interpretation (seed section 3).

- export_latents: results/latents/{family}.nc, dims (sample, latent): latents, the labels and the head's
  predicted labels (sample, parameter), split, cell, [M/H] (and [alpha/Fe]) and the SFH index per sample.
- correlation_matrix / flux_correlation: Pearson correlations latent-latent (16 x 16) and latent-flux at each
  wavelength (16 x n_wavelength), computed with standardised columns in float64.
- equivalent_width: Lick-style indices (band, blue and red pseudo-continua; linear continuum through the
  pseudo-continua's mean fluxes at their midpoints): EW = integral over the band of (1 - F / F_cont) in A.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ..io import provenance_attrs, write_netcdf

log = logging.getLogger(__name__)

# (band, blue continuum, red continuum) in air Angstrom, bluest first. Lick indices (Worthey et al. 1994; Worthey &
# Ottaviani 1997 for Hdelta_A, Hgamma_A); Halpha: Cohen, Blakeslee & Ryzhov (1998).
LINE_INDICES = {
    "Hδ_A": ((4083.500, 4122.250), (4041.600, 4079.750), (4128.500, 4161.000)),
    "Ca4227": ((4222.250, 4234.750), (4211.000, 4219.750), (4241.000, 4251.000)),
    "G4300": ((4281.375, 4316.375), (4266.375, 4282.625), (4318.875, 4335.125)),
    "Hγ_A": ((4319.750, 4363.500), (4283.500, 4319.750), (4367.250, 4419.750)),
    "Fe4383": ((4369.125, 4420.375), (4359.125, 4370.375), (4442.875, 4455.375)),
    "Hβ": ((4847.875, 4876.625), (4827.875, 4847.875), (4876.625, 4891.625)),
    "Mg b": ((5160.125, 5192.625), (5142.625, 5161.375), (5191.375, 5206.375)),
    "Fe5270": ((5245.650, 5285.650), (5233.150, 5248.150), (5285.650, 5318.150)),
    "Fe5335": ((5312.125, 5352.125), (5304.625, 5315.875), (5353.375, 5363.375)),
    "Na D": ((5876.875, 5909.375), (5860.625, 5875.625), (5922.125, 5948.125)),
    "Hα": ((6554.0, 6575.0), (6515.0, 6540.0), (6575.0, 6585.0)),
}


def equivalent_width(flux: np.ndarray, wavelength: np.ndarray, index: str | tuple) -> np.ndarray:
    """Equivalent width in A (positive for absorption) of every spectrum (rows of flux) in one index."""
    band, blue, red = LINE_INDICES[index] if isinstance(index, str) else index
    w = np.asarray(wavelength, float)
    flux = np.atleast_2d(flux)

    def mean_in(lo, hi):
        sel = (w >= lo) & (w <= hi)
        return flux[:, sel].mean(axis=1), 0.5 * (lo + hi)

    fb, wb = mean_in(*blue)
    fr, wr = mean_in(*red)
    sel = (w >= band[0]) & (w <= band[1])
    cont = fb[:, None] + (fr - fb)[:, None] * (w[sel] - wb)[None, :] / (wr - wb)
    dw = np.gradient(w)[sel]
    return np.sum((1.0 - flux[:, sel] / cont) * dw[None, :], axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    return x / np.where(std > 0, std, np.inf)  # a constant column correlates 0 with everything


def correlation_matrix(latents: np.ndarray) -> np.ndarray:
    """Pearson correlation between latent components (n_latent x n_latent); 0 off-diagonal for constant ones."""
    z = _standardise(latents)
    c = z.T @ z / len(z)
    np.fill_diagonal(c, 1.0)
    return c


def flux_correlation(latents: np.ndarray, flux: np.ndarray, block: int = 4096) -> np.ndarray:
    """Pearson correlation of each latent with the flux at each wavelength: (n_latent, n_wavelength)."""
    z = _standardise(latents)
    f = np.asarray(flux)
    mean = f.mean(axis=0, dtype=np.float64)
    std = f.std(axis=0, dtype=np.float64)
    out = np.zeros((z.shape[1], f.shape[1]))
    for start in range(0, len(f), block):  # blocks keep the float64 copy small at paper scale
        out += z[start : start + block].T @ (f[start : start + block] - mean)
    return out / len(f) / np.where(std > 0, std, np.inf)[None, :]


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most max_n of n items (all of them when n <= max_n)."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_n, replace=False))


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


def latents_dataset(data, latents: np.ndarray, predictions: np.ndarray, attrs: dict) -> xr.Dataset:
    n, k = latents.shape
    pretty = {"metallicity": "[M/H]", "alpha": "[alpha/Fe]"}
    ds = xr.Dataset(
        {
            "latents": (
                ("sample", "latent"),
                latents.astype(np.float32),
                {"long_name": "encoder latent vector", "units": "1"},
            ),
            "labels": (
                ("sample", "parameter"),
                data.labels.astype(np.float64),
                {"long_name": "true labels: t10...t90 (Gyr, cosmic time), [M/H] and [alpha/Fe] (dex)"},
            ),
            "predicted_labels": (
                ("sample", "parameter"),
                predictions.astype(np.float64),
                {"long_name": "the encoder head's point estimate of the labels (same units)"},
            ),
        },
        coords={
            "sample": ("sample", np.arange(n), {"long_name": "sample id: row of the family's cubes in cell order"}),
            "latent": ("latent", np.arange(k), {"long_name": "latent component"}),
            "parameter": (
                "parameter",
                np.array(data.parameters, dtype=str),
                {"long_name": "label name; " + ", ".join(f"{a} = {b}" for a, b in pretty.items())},
            ),
            "split": ("sample", data.split.astype(str), {"long_name": "train / validation / test (from the cubes)"}),
            "sfh_index": ("sample", data.sfh_index, {"long_name": "SFH index in results/sfh/{family}.nc"}),
            "cell": ("sample", data.cell.astype(str), {"long_name": "spectra cube ([M/H], [alpha/Fe] cell)"}),
            "metallicity": ("sample", data.metallicity, {"units": "dex", "long_name": "[M/H] of the cell"}),
            "wavelength": ("wavelength", data.wavelength, {"units": "Angstrom", "long_name": "air wavelength"}),
        },
        attrs=attrs,
    )
    if data.alpha is not None:
        ds = ds.assign_coords(alpha=("sample", data.alpha, {"units": "dex", "long_name": "[alpha/Fe] of the cell"}))
    return ds


def export_latents(data, model_path: str | Path, out_path: str | Path, batch_size: int = 512) -> Path:
    """Encode every spectrum (clean, eval mode) and write results/latents/{family}.nc.

    The checkpoint alone decides the latents (batch_size only the speed); its hyper-parameters go in the attrs."""
    import torch

    from .encoder import load_encoder

    model = load_encoder(model_path, "cuda" if torch.cuda.is_available() else "cpu")
    if list(model.hparams.parameters) != list(data.parameters):
        from ..errors import InputError

        raise InputError(
            f"{model_path} was trained on labels {list(model.hparams.parameters)}, the cubes have {data.parameters}"
        )
    latents, predictions = model.encode(data.flux, batch_size=batch_size)
    attrs = {
        "family": data.family,
        "encoder_checkpoint": str(model_path),
        "encoder": "SPENDER-style CNN + attention pooling + MLP (galaxy_sbi.spectra.encoder)",
        "augmentation_in_training": str(bool((model.hparams.augmentation or {}).get("enabled"))),
        "input": "clean synthetic spectra (no augmentation at export)",
        **provenance_attrs({"encoder": dict(model.hparams)}, "latents_export"),
    }
    ds = latents_dataset(data, latents, predictions, attrs)
    log.info("%d latent vectors of %d components -> %s", *latents.shape, out_path)
    return write_netcdf(ds, out_path, chunk_sizes={"sample": 65536}, complevel=1)


# ---------------------------------------------------------------------------------------------
# interpretation plots
# ---------------------------------------------------------------------------------------------


def _umap(latents: np.ndarray, settings: dict, seed: int) -> np.ndarray:
    import umap

    z = _standardise(latents)
    z = np.nan_to_num(z)
    n_neighbors = int(min(settings["n_neighbors"], len(z) - 1))
    reducer = umap.UMAP(
        n_neighbors=max(2, n_neighbors),
        min_dist=settings["min_dist"],
        random_state=seed,
        n_components=2,
        init="spectral" if len(z) > n_neighbors + 2 else "random",
    )
    return reducer.fit_transform(z)


def interpretation_plots(latents: xr.Dataset, data, outputs: dict, settings: dict, history=None, seed: int = 0) -> None:
    """Every figure of the latents_plots rule (see the rule's outputs)."""
    from .. import plots

    family = latents.attrs.get("family", data.family)
    z = latents["latents"].values
    names = [str(p) for p in latents["parameter"].values]
    split = latents["split"].values.astype(str)

    plots.plot_latent_distributions(
        z,
        split,
        outputs["distributions"],
        title=f"{family}: distributions of the {z.shape[1]} latent components ({len(z)} spectra)",
    )
    corr = correlation_matrix(z)
    plots.plot_latent_correlation(
        corr,
        outputs["correlation"],
        title=f"{family}: Pearson correlation between latent components ({len(z)} spectra)",
    )

    idx = subsample(len(z), settings["correlation_samples"], seed)
    fcorr = flux_correlation(z[idx], data.flux[idx])
    plots.plot_latent_flux_correlation(
        fcorr,
        data.wavelength,
        data.flux[idx].mean(axis=0),
        outputs["flux_correlation"],
        title=f"{family}: correlation of each latent with the flux at each wavelength ({len(idx)} spectra)",
    )

    u_idx = subsample(len(z), settings["umap"]["samples"], seed)
    embedding = _umap(z[u_idx], settings["umap"], seed)
    colours = {}
    for line in ("Hα", "Hβ"):
        colours[f"EW({line}) [Å]"] = equivalent_width(data.flux[u_idx], data.wavelength, line)
    labels = latents["labels"].values[u_idx]
    for i, name in enumerate(names):
        pretty = {"metallicity": "[M/H] [dex]", "alpha": "[α/Fe] [dex]"}.get(name, f"{name} [Gyr]")
        colours[pretty] = labels[:, i]
    plots.plot_latent_umap(
        embedding,
        colours,
        outputs["umap"],
        title=f"{family}: UMAP of the latents ({len(u_idx)} spectra, n_neighbors "
        f"{settings['umap']['n_neighbors']}, min_dist {settings['umap']['min_dist']})",
    )

    test = split == "test"
    plots.plot_predicted_vs_true(
        latents["labels"].values[test],
        latents["predicted_labels"].values[test],
        names,
        outputs["performance"],
        history=history,
        title=f"{family}: encoder head on the test set ({int(test.sum())} spectra)",
    )


def latents_and_labels(path: str | Path, splits=("test",)):
    """(rows, latents, labels, label names) of the samples of results/latents/{family}.nc in the given splits.

    rows index the family's samples (the cubes in cell order), e.g. to pick the same spectra."""
    with xr.open_dataset(path) as ds:
        rows = np.flatnonzero(np.isin(ds["split"].values.astype(str), list(splits)))
        names = [str(p) for p in ds["parameter"].values]
        return rows, ds["latents"].values[rows], ds["labels"].values[rows], names


def noisy_latents(model, flux: np.ndarray, snr, seed, batch_size: int = 512) -> np.ndarray:
    """Latents (len(flux), latent_dim) of spectra with Gaussian noise at ``snr`` (a scalar or one per spectrum;
    realism.add_noise, S/N at the median flux) through a loaded encoder (encoder.load_encoder)."""
    from .realism import add_noise

    return model.encode(add_noise(flux, snr, np.random.default_rng(seed)), batch_size=batch_size)[0]


def log_uniform_snr(n: int, snr_range, seed) -> np.ndarray:
    """n S/N values drawn log-uniformly in snr_range = (low, high)."""
    low, high = (float(v) for v in snr_range)
    if not 0 < low <= high:
        raise ValueError(f"snr_range must be 0 < low <= high, got {snr_range}")
    return 10 ** np.random.default_rng(seed).uniform(np.log10(low), np.log10(high), n)


def noise_aware_training_set(x, labels, flux, encoder, noise: dict, seed: int, family: str, batch_size: int = 512):
    """The NPE's training set with the noise in the simulator: the clean latents plus ``noise['copies']`` noisy
    copies of every training spectrum (S/N log-uniform in ``noise['snr_range']``) through the same encoder, so one
    amortised posterior serves clean and noisy spectra and is calibrated on both. Returns (x, labels, snr): the S/N of
    every row, inf for the clean ones (the input of an NPE conditioned on it)."""
    from ..seeding import derived_seed

    clean = len(x)
    xs, ls, snrs = [x], [labels], [np.full(clean, np.inf)]
    for copy in range(noise["copies"]):
        snr_seed, noise_seed = derived_seed(seed, "npe_noise", family, str(copy)).spawn(2)
        snr = log_uniform_snr(clean, noise["snr_range"], snr_seed)
        xs.append(noisy_latents(encoder, flux, snr, noise_seed, batch_size))
        ls.append(labels)
        snrs.append(snr)
    log.info(
        "%d clean + %d noisy latent vectors (S/N %g-%g, log-uniform)",
        clean,
        clean * noise["copies"],
        *noise["snr_range"],
    )
    return np.concatenate(xs), np.concatenate(ls), np.concatenate(snrs)

"""The spectrum encoder (SPENDER, Melchior et al. 2022): spectra -> 16 latents -> labels.

Architecture (every size from the config's `encoder:` section):

- three 1-D convolution blocks with wider kernels (paper: 128/256/512 filters, kernels 5/11/21), each
  Conv1d -> InstanceNorm1d -> PReLU -> Dropout; max-pooling (5 and 11, stride = size) after the first two;
- dot-product attention pooling over wavelength: the last block's channels are split in two halves h and a;
  softmax over wavelength of a weights h:  x_c = sum_l h_cl softmax_l(a_cl)  (one weight vector per channel);
- optionally (``basis_components`` k > 0) a fixed linear branch beside the convolutions: the scaled flux projected
  onto the first k principal components of the training spectra (each scaled to unit sd, its variance counted
  with that of noise at S/N ``basis_snr``), concatenated with the pooled features. Attention pooling sums over
  wavelength, so the conv branch must learn where a feature sits; the ~1 % differences between old populations
  lie in fixed places, which a projection keeps (docs/studies/encoder.md);
- an MLP (LeakyReLU, dropout) from the pooled features (and basis coefficients) to the latents (16);
- a head (MLP) from the latents to the standardised labels (t10...t90, [M/H], [alpha/Fe] when present),
  trained with a robust loss (log-cosh, the seed's choice) so the latents are shaped for the inference task.

EncoderModule (LightningModule) holds the label mean / std and the wavelength grid as buffers and saves its
hyperparameters, so a checkpoint alone encodes spectra and predicts labels in physical units.

Training-time augmentation (`encoder.augmentation`, applied per training batch on the device, vectorised in
torch): velocity broadening (the Gaussian LOSVD of galaxy_sbi.spectra.realism.broaden, re-implemented in torch
with the same log-grid rebinning matrices), Gaussian noise at an S/N per spectrum drawn log-uniformly from
the configured range (realism.add_noise, mode "median"; with ``error_spectra``, the path of an error_spectra.nc,
its wavelength dependence one source's shape to a power uniform in ``error_power_range``), and masks of random
wavelength windows filled as the evaluation and the observed galaxies fill masked pixels (matched.encoder_fill: the
training mean per pixel with pixel scaling, else 1, the median). Validation and test batches are never augmented.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from ..config import config_hash, family_value
from ..inference.metrics import r2_scores
from ..workflow import RUNTIME_KEYS
from . import realism

ENCODER_RUNTIME = RUNTIME_KEYS["encoder"]

log = logging.getLogger(__name__)

LOSSES = ("logcosh", "mse", "huber")
INPUT_SCALINGS = ("none", "pixel")


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


def mlp(n_in: int, hidden: Sequence[int], n_out: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    sizes = [n_in, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(sizes[-1], n_out))
    return nn.Sequential(*layers)


class SpectrumEncoder(nn.Module):
    """SPENDER's encoder: conv blocks with max-pooling, attention pooling over wavelength, MLP to latents."""

    def __init__(
        self,
        filters: Sequence[int] = (128, 256, 512),
        kernels: Sequence[int] = (5, 11, 21),
        pooling: Sequence[int] = (5, 11),
        mlp_hidden: Sequence[int] = (128, 64, 32),
        latent_dim: int = 16,
        dropout: float = 0.0,
        basis_components: int = 0,
        n_wavelength: int | None = None,
    ):
        super().__init__()
        if basis_components and not n_wavelength:
            raise ValueError("basis_components needs n_wavelength")
        if len(filters) != 3 or len(kernels) != 3 or len(pooling) != 2:
            raise ValueError("the encoder has three conv blocks (3 filters, 3 kernels) and two poolings")
        if filters[-1] % 2:
            raise ValueError(
                "the last block's filters are split in two halves (features, attention): use an even number"
            )
        blocks = []
        for i, (f, k) in enumerate(zip(filters, kernels)):
            f_in = 1 if i == 0 else filters[i - 1]
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(f_in, f, kernel_size=k, padding=k // 2),
                    nn.InstanceNorm1d(f),
                    nn.PReLU(f),
                    nn.Dropout(dropout),
                )
            )
        self.conv1, self.conv2, self.conv3 = blocks
        self.pool1, self.pool2 = (nn.MaxPool1d(p, padding=p // 2) for p in pooling)
        self.n_feature = filters[-1] // 2
        self.n_basis = int(basis_components)
        # (k, n_wavelength): principal components / sqrt(eigenvalue), set from the training spectra (set_basis)
        # (absent without a basis: checkpoints written before the branch existed still load)
        if self.n_basis:
            self.register_buffer("basis", torch.zeros(self.n_basis, n_wavelength))
        self.mlp = mlp(self.n_feature + self.n_basis, mlp_hidden, latent_dim, dropout)

    def set_basis(self, scaled_flux: np.ndarray, noise_sd=None, max_spectra: int = 20_000, seed: int = 0) -> np.ndarray:
        """The first k principal components of (at most max_spectra of) the scaled training flux, each divided by
        sqrt(its variance + the variance noise of sd ``noise_sd`` (per pixel, scaled units) gives it): unit
        variance where the signal dominates, the noise capped at unit sd where it does not (a Wiener-like
        whitening; plain whitening when None). Returns the fraction of the variance each explains."""
        x = np.asarray(scaled_flux, np.float64)
        if len(x) > max_spectra:
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_spectra, replace=False))]
        x = x - x.mean(0)
        cov = x.T @ x / max(len(x) - 1, 1)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1][: self.n_basis]
        val, vec = eigval[order], eigvec[:, order]
        vec *= np.sign(vec[np.abs(vec).argmax(0), np.arange(vec.shape[1])])  # a deterministic sign per component
        nu = 0.0 if noise_sd is None else ((vec * np.asarray(noise_sd, float)[:, None]) ** 2).sum(0)
        # a component without variance (fewer training spectra than components) gets zeros, not a division by ~0
        scale = np.where(val > 1e-8 * val[0], 1.0 / np.sqrt(np.maximum(val + nu, 1e-30)), 0.0)
        self.basis.copy_(torch.as_tensor((vec * scale).T, dtype=torch.float32))
        return val / eigval.sum()

    def _downsample(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = flux.unsqueeze(1)
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.conv3(x)
        return torch.split(x, [self.n_feature, self.n_feature], dim=1)

    def attention_weights(self, flux: torch.Tensor) -> torch.Tensor:
        """(batch, n_feature, reduced wavelength) softmax weights; each channel's weights sum to one."""
        return torch.softmax(self._downsample(flux)[1], dim=-1)

    def pooled(self, flux: torch.Tensor) -> torch.Tensor:
        """Attention-pooled features (and the basis coefficients) that the MLP turns into latents."""
        h, a = self._downsample(flux)
        pooled = torch.sum(h * torch.softmax(a, dim=-1), dim=-1)
        if self.n_basis:
            pooled = torch.cat([pooled, flux @ self.basis.T], dim=1)
        return pooled

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        """flux (batch, n_wavelength) -> latents (batch, latent_dim)."""
        return self.mlp(self.pooled(flux))


def robust_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "logcosh") -> torch.Tensor:
    d = pred - target
    if kind == "logcosh":  # log cosh d = |d| + log1p(exp(-2|d|)) - log 2, stable for large |d|
        a = d.abs()
        return torch.mean(a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0))
    if kind == "mse":
        return torch.mean(d**2)
    if kind == "huber":
        return nn.functional.huber_loss(pred, target)
    raise ValueError(f"unknown loss {kind!r} ({', '.join(LOSSES)})")


# ---------------------------------------------------------------------------------------------
# augmentation (the realism operators in torch, per batch)
# ---------------------------------------------------------------------------------------------


def _sparse(matrix) -> torch.Tensor:
    coo = matrix.tocoo()
    idx = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(
        idx, torch.as_tensor(coo.data, dtype=torch.float32), coo.shape, check_invariants=False
    ).coalesce()


def _odd_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """numpy.pad(mode="reflect", reflect_type="odd") along the last axis."""
    parts = [x]
    if left:
        parts.insert(0, 2 * x[:, :1] - x[:, 1 : left + 1].flip(1))
    if right:
        parts.append(2 * x[:, -1:] - x[:, -right - 1 : -1].flip(1))
    return torch.cat(parts, dim=1)


class Augmenter:
    """Vectorised torch versions of the realism operators for one wavelength grid (built once, per device)."""

    def __init__(self, wavelength: np.ndarray, settings: dict, oversample: int = 2, fill=None):
        self.settings = settings
        # masked pixels: fill (n_wavelength,), else 1 (the median of a normalised spectrum)
        self.fill = torch.as_tensor(np.ones(len(wavelength)) if fill is None else np.asarray(fill), dtype=torch.float32)
        self.wavelength_np = np.asarray(wavelength, float)
        edges = realism.pixel_edges(self.wavelength_np)
        log_edges, self.velscale = realism.log_grid(self.wavelength_np, oversample)
        self.dlam = torch.as_tensor(np.diff(edges), dtype=torch.float32)
        self.to_log = _sparse(realism.rebin_matrix(edges, log_edges))
        self.to_linear = _sparse(realism.rebin_matrix(log_edges, edges))
        self.wavelength = torch.as_tensor(self.wavelength_np, dtype=torch.float32)
        # the noise's wavelength dependence: error-spectrum shapes (error_spectra.nc) to a random power, else white
        self.shapes = None
        if settings.get("error_spectra"):
            from .error_spectra import load_shapes

            self.shapes = torch.as_tensor(np.log(load_shapes(settings["error_spectra"])), dtype=torch.float32)
        self.device = torch.device("cpu")

    def to(self, device) -> Augmenter:
        device = torch.device(device)
        if device != self.device:
            for name in ("dlam", "to_log", "to_linear", "wavelength", "fill", "shapes"):
                if getattr(self, name) is not None:
                    setattr(self, name, getattr(self, name).to(device))
            self.device = device
        return self

    def broaden(self, flux: torch.Tensor, sigma_kms: torch.Tensor) -> torch.Tensor:
        """realism.broaden in torch: Gaussian LOSVD of dispersion sigma_kms (batch,) via a log-lambda grid."""
        counts = torch.sparse.mm(self.to_log, (flux * self.dlam).T).T
        sigma_pix = sigma_kms.to(flux.dtype) / self.velscale
        pad = int(math.ceil(6 * float(sigma_pix.max()))) + 2
        n_log = counts.shape[1]
        from scipy.fft import next_fast_len

        n = next_fast_len(n_log + 2 * pad)
        padded = _odd_pad(counts, pad, n - n_log - pad)
        freq = torch.fft.rfftfreq(n, device=flux.device)
        transfer = torch.exp(-2.0 * (math.pi * sigma_pix[:, None] * freq[None, :]) ** 2)
        smoothed = torch.fft.irfft(torch.fft.rfft(padded, dim=1) * transfer, n=n, dim=1)[:, pad : pad + n_log]
        return torch.sparse.mm(self.to_linear, smoothed.T).T / self.dlam

    def __call__(self, flux: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        s = self.settings
        b = flux.shape[0]
        dev = flux.device
        kw = dict(device=dev, generator=generator)
        chosen = torch.rand(b, **kw) < s["probability"]
        if not bool(chosen.any()):
            return flux
        out = flux.clone()
        x = flux[chosen]
        n = x.shape[0]
        lo, hi = s["sigma_kms_range"]
        if hi > 0:
            sigma = lo + (hi - lo) * torch.rand(n, **kw)
            x = self.broaden(x, sigma)
        lo, hi = s["snr_range"]
        snr = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(n, **kw))
        sigma_noise = x.median(dim=1, keepdim=True).values / snr[:, None]
        if self.shapes is not None:  # one source's shape to a power u per spectrum, median 1 (u = 0: white)
            k = torch.randint(len(self.shapes), (n,), **kw)
            u_lo, u_hi = s["error_power_range"]
            u = u_lo + (u_hi - u_lo) * torch.rand(n, **kw)
            shape = torch.exp(self.shapes[k] * u[:, None])
            sigma_noise = sigma_noise * shape / shape.median(dim=1, keepdim=True).values
        x = x + sigma_noise * torch.randn(x.shape, **kw)
        m = s["mask"]
        if m["probability"] > 0 and m["max_windows"] > 0:
            w_lo, w_hi = m["width_angstrom"]
            k = m["max_windows"]
            wave = self.wavelength
            centre = wave[0] + (wave[-1] - wave[0]) * torch.rand(n, k, **kw)
            half = 0.5 * (w_lo + (w_hi - w_lo) * torch.rand(n, k, **kw))
            active = (torch.rand(n, 1, **kw) < m["probability"]) & (
                torch.arange(k, device=dev)[None, :] < torch.randint(1, k + 1, (n, 1), **kw)
            )
            inside = (wave[None, None, :] - centre[..., None]).abs() <= half[..., None]
            mask = (inside & active[..., None]).any(dim=1)
            x = torch.where(mask, self.fill.to(x.dtype), x)
        out[chosen] = x.to(out.dtype)
        return out


# ---------------------------------------------------------------------------------------------
# the LightningModule
# ---------------------------------------------------------------------------------------------


class EncoderModule(L.LightningModule):
    """Encoder + label head, trained on standardised labels; a checkpoint alone can encode and predict."""

    def __init__(
        self,
        n_wavelength: int,
        parameters: Sequence[str],
        filters=(128, 256, 512),
        kernels=(5, 11, 21),
        pooling=(5, 11),
        mlp_hidden=(128, 64, 32),
        head_hidden=(64,),
        latent_dim: int = 16,
        dropout: float = 0.0,
        loss: str = "logcosh",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: dict | None = None,
        augmentation: dict | None = None,
        input_scaling: str = "none",
        basis_components: int = 0,
        basis_snr: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.parameters_names = list(parameters)
        self.encoder = SpectrumEncoder(
            filters, kernels, pooling, mlp_hidden, latent_dim, dropout, basis_components, n_wavelength
        )
        self.head = mlp(latent_dim, head_hidden, len(parameters), dropout)
        self.register_buffer("label_mean", torch.zeros(len(parameters)))
        self.register_buffer("label_std", torch.ones(len(parameters)))
        self.register_buffer("wavelength", torch.zeros(n_wavelength, dtype=torch.float64))
        if input_scaling not in INPUT_SCALINGS:
            raise ValueError(f"unknown input_scaling {input_scaling!r} ({', '.join(INPUT_SCALINGS)})")
        # per-pixel mean / std of the training flux ("pixel"): the spectra of old populations differ by ~1 %,
        # which the conv filters see only after each pixel is put on a unit scale
        self.register_buffer("flux_mean", torch.zeros(n_wavelength))
        self.register_buffer("flux_std", torch.ones(n_wavelength))
        self._augmenter: Augmenter | None = None

    # -- data-dependent state ------------------------------------------------------------------
    def set_data_stats(
        self, wavelength: np.ndarray, labels_train: np.ndarray, flux_train: np.ndarray | None = None
    ) -> None:
        if self.hparams.input_scaling == "pixel":
            if flux_train is None:
                raise ValueError("input_scaling 'pixel' needs the training flux")
            f_mean = np.mean(flux_train, axis=0, dtype=np.float64)
            f_std = np.std(flux_train, axis=0, dtype=np.float64)
            self.flux_mean.copy_(torch.as_tensor(f_mean, dtype=torch.float32))
            self.flux_std.copy_(torch.as_tensor(np.where(f_std > 1e-12, f_std, 1.0), dtype=torch.float32))
        if self.encoder.n_basis:
            if flux_train is None:
                raise ValueError("basis_components needs the training flux")
            scaled = self.scale_input(torch.as_tensor(np.asarray(flux_train, np.float32))).numpy()
            snr = self.hparams.basis_snr
            # noise at S/N basis_snr of a median-normalised spectrum (flux ~1), in the scaled units the basis sees
            noise_sd = None if snr is None else (1.0 / snr) / self.flux_std.numpy().astype(float)
            explained = self.encoder.set_basis(scaled, noise_sd)
            log.info(
                "spectral basis: %d components explain %.4f %% of the scaled training flux's variance",
                self.encoder.n_basis,
                100 * explained.sum(),
            )
        mean = labels_train.mean(axis=0)
        std = labels_train.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant label (one [M/H] cell) is only centred
        self.label_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.label_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        self.wavelength.copy_(torch.as_tensor(np.asarray(wavelength, float)))

    @property
    def augmentation_enabled(self) -> bool:
        aug = self.hparams.augmentation
        return bool(aug and aug.get("enabled"))

    def augmenter(self) -> Augmenter:
        if self._augmenter is None:
            from .matched import encoder_fill  # masked pixels as the evaluation and the observed galaxies fill them

            self._augmenter = Augmenter(
                self.wavelength.cpu().numpy(), self.hparams.augmentation, fill=encoder_fill(self)
            )
        return self._augmenter.to(self.device)

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0):
        trainer = self._trainer  # None outside a Trainer (the .trainer property raises there)
        if trainer is not None and trainer.training and self.augmentation_enabled:
            flux, labels = batch
            batch = (self.augmenter()(flux), labels)
        return batch

    # -- forward ----------------------------------------------------------------------------------
    def scale_input(self, flux: torch.Tensor) -> torch.Tensor:
        """What the conv blocks see: the flux itself, or each pixel standardised ("pixel")."""
        if self.hparams.input_scaling == "pixel":
            return (flux - self.flux_mean) / self.flux_std
        return flux

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        """flux -> latents."""
        return self.encoder(self.scale_input(flux))

    def predict_standardised(self, flux: torch.Tensor) -> torch.Tensor:
        return self.head(self(flux))

    @torch.no_grad()
    def encode(self, flux, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """(latents, predicted labels in physical units) of a numpy (n, n_wavelength) array, eval mode."""
        was_training = self.training
        self.eval()
        latents, preds = [], []
        for start in range(0, len(flux), batch_size):
            x = torch.as_tensor(np.asarray(flux[start : start + batch_size], np.float32), device=self.device)
            z = self(x)
            latents.append(z.cpu().numpy())
            preds.append((self.head(z) * self.label_std + self.label_mean).cpu().numpy())
        self.train(was_training)
        empty = np.empty((0, self.hparams.latent_dim), np.float32)
        return (
            np.concatenate(latents) if latents else empty,
            np.concatenate(preds) if preds else np.empty((0, len(self.parameters_names)), np.float32),
        )

    # -- training -------------------------------------------------------------------------------
    def _step(self, batch, stage: str):
        flux, labels = batch
        target = (labels - self.label_mean) / self.label_std
        loss = robust_loss(self.predict_standardised(flux), target, self.hparams.loss)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(flux))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )
        sched = self.hparams.lr_schedule or {}
        if not sched.get("factor"):
            return opt
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=sched["factor"], patience=sched["patience"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}

    def on_train_epoch_end(self):
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_epoch=True)


def module_kwargs(settings: dict, family: str | None = None) -> dict:
    """EncoderModule keyword arguments from the config's `encoder:` section (``basis_components`` a number, or one
    per family: ``family``'s, 0 when it is not listed)."""
    keys = (
        "filters",
        "kernels",
        "pooling",
        "mlp_hidden",
        "head_hidden",
        "latent_dim",
        "dropout",
        "loss",
        "learning_rate",
        "weight_decay",
        "lr_schedule",
        "augmentation",
        "input_scaling",
    )
    basis = family_value(settings.get("basis_components", 0), family, 0)
    return {k: settings[k] for k in keys} | {"basis_components": int(basis), "basis_snr": settings.get("basis_snr")}


def load_encoder(path: str | Path, device: str = "cpu") -> EncoderModule:
    return EncoderModule.load_from_checkpoint(str(path), map_location=device, weights_only=False).eval()


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# training (what the encoder_train rule runs)
# ---------------------------------------------------------------------------------------------


class _EpochLog(L.Callback):
    """One log line per epoch (the rule's log file keeps the history even without the progress bar)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.epoch_times: list[float] = []
        self.first_epoch: int | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        if self.first_epoch is None:
            self.first_epoch = trainer.current_epoch
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch_times.append(time.perf_counter() - self._start)
        m = trainer.callback_metrics
        log.info(
            "epoch %d: train_loss %.4f, val_loss %.4f, %.1f s",
            trainer.current_epoch,
            float(m.get("train_loss", float("nan"))),
            float(m.get("val_loss", float("nan"))),
            self.epoch_times[-1],
        )


def _loader(flux, labels, idx, batch_size, shuffle, seed):
    ds = torch.utils.data.TensorDataset(torch.from_numpy(flux[idx]), torch.from_numpy(labels[idx]))
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=0, drop_last=False
    )


def merge_csv_logs(csv_root: Path) -> list[dict]:
    """Per-epoch rows of every CSVLogger version (a resumed run writes a new version); later rows win."""
    import csv

    rows: dict[int, dict] = {}
    versions = sorted(csv_root.glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    for version in versions:
        path = version / "metrics.csv"
        if not path.exists():
            continue
        with path.open() as f:
            for row in csv.DictReader(f):
                epoch = int(float(row["epoch"]))
                merged = rows.setdefault(epoch, {"epoch": epoch})
                merged.update({k: float(v) for k, v in row.items() if v not in ("", None) and k != "epoch"})
    return [rows[e] for e in sorted(rows)]


def train_encoder(
    data,
    out_dir: str | Path,
    settings: dict,
    seed: int,
    threads: int = 1,
    progress: bool = True,
    extra_callbacks: Sequence[L.Callback] = (),
    outputs: dict | None = None,
    runtime: dict | None = None,
) -> dict:
    """Train one family's encoder; resumable. Returns the metrics written to outputs["metrics"].

    out_dir/checkpoints/ holds last.ckpt and the best checkpoint while training; run.json there records the
    hash of the settings and inputs. A re-run with the same hash and an unfinished run resumes from
    last.ckpt (Snakemake does not delete this folder: it is not a declared output); any other re-run starts
    afresh. Products (`outputs`, default in out_dir): model (encoder.ckpt, the best epoch by val_loss),
    history (history.csv), metrics (metrics.json). `runtime` (accelerator, progress_refresh) may also sit in
    `settings`; it does not enter the resume key.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    out_dir = Path(out_dir)
    outputs = {
        "model": out_dir / "encoder.ckpt",
        "metrics": out_dir / "metrics.json",
        "history": out_dir / "history.csv",
        **{k: Path(v) for k, v in (outputs or {}).items()},
    }
    runtime = {
        "accelerator": "auto",
        "progress_refresh": 20,
        **{k: settings[k] for k in ENCODER_RUNTIME if k in settings},
        **(runtime or {}),
    }
    settings = {k: v for k, v in settings.items() if k not in ENCODER_RUNTIME}
    ckpt_dir, csv_root = out_dir / "checkpoints", out_dir / "csv"
    torch.set_num_threads(max(1, threads))
    run_key = config_hash(
        {
            "settings": settings,
            "seed": seed,
            "n": len(data),
            "family": data.family,
            "parameters": data.parameters,
            "flux_sum": float(np.float64(data.flux[:, ::97]).sum()),
        }
    )
    state_file = ckpt_dir / "run.json"
    last = ckpt_dir / "last.ckpt"
    resume = None
    if last.exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("key") == run_key and not state.get("finished"):
            resume = last
    if resume is None:
        for d in (ckpt_dir, csv_root):
            shutil.rmtree(d, ignore_errors=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"key": run_key, "finished": False}))
    if resume:
        log.info("resuming from %s", resume)

    L.seed_everything(seed, workers=True, verbose=False)
    train_idx, val_idx, test_idx = (data.indices(s) for s in ("train", "validation", "test"))
    if len(train_idx) == 0 or len(val_idx) == 0:
        from ..errors import InputError

        raise InputError(
            f"{data.family}: the training needs train and validation spectra (got {len(train_idx)} and {len(val_idx)})"
        )
    module = EncoderModule(
        n_wavelength=data.flux.shape[1], parameters=data.parameters, **module_kwargs(settings, data.family)
    )
    module.set_data_stats(data.wavelength, data.labels[train_idx], data.flux[train_idx])
    bs = settings["batch_size"]
    train_loader = _loader(data.flux, data.labels, train_idx, bs, True, seed)
    val_loader = _loader(data.flux, data.labels, val_idx, bs, False, seed)

    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    # last.ckpt after every epoch: Lightning's save_last only rewrites it when the best one was saved as well, so
    # a run interrupted after an epoch without improvement would resume from an older epoch
    latest = ModelCheckpoint(
        dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    early = EarlyStopping(
        monitor="val_loss",
        mode="min",
        patience=settings["early_stopping"]["patience"],
        min_delta=settings["early_stopping"]["min_delta"],
    )
    epochs = _EpochLog()
    callbacks = [checkpoint, latest, early, epochs, *extra_callbacks]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=runtime["progress_refresh"]))
    trainer = L.Trainer(
        default_root_dir=out_dir,
        max_epochs=settings["max_epochs"],
        accelerator=runtime["accelerator"],
        devices=1,
        precision=settings["precision"],
        deterministic=settings["deterministic"],
        gradient_clip_val=settings["gradient_clip"] or None,
        callbacks=callbacks,
        logger=CSVLogger(out_dir, name="csv"),
        enable_progress_bar=progress,
        log_every_n_steps=10,
        enable_model_summary=progress,
    )
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)
    fit_time = time.perf_counter() - t0
    if trainer.interrupted:
        from ..errors import InputError

        raise InputError("training was interrupted; re-run the rule to resume from the last checkpoint")

    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else last
    shutil.copyfile(best, outputs["model"])
    model = load_encoder(outputs["model"])
    history = merge_csv_logs(csv_root)
    _write_history(history, outputs["history"])

    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    metrics = {
        "family": data.family,
        "n_train": int(len(train_idx)),
        "n_validation": int(len(val_idx)),
        "n_test": int(len(test_idx)),
        "epochs_run": int(trainer.current_epoch),
        "best_epoch": int(torch.load(best, map_location="cpu", weights_only=False)["epoch"]),
        "best_val_loss": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        "stopped_early": bool(early.stopped_epoch > 0),
        "resumed_from_epoch": epochs.first_epoch if resume else None,
        "training_time_s": round(fit_time, 2),
        "accelerator": accelerator,
        "threads": torch.get_num_threads(),
    }
    if epochs.epoch_times:
        per_epoch = float(np.median(epochs.epoch_times))
        metrics["median_epoch_time_s"] = round(per_epoch, 3)
        metrics["train_spectra_per_s"] = round(len(train_idx) / per_epoch, 1)
    for split, idx in (("validation", val_idx), ("test", test_idx)):
        if len(idx):
            _, pred = model.encode(data.flux[idx], batch_size=max(bs, 256))
            r2 = r2_scores(data.labels[idx].astype(float), pred.astype(float))
            metrics[f"r2_{split}"] = {
                p: (None if np.isnan(v) else round(float(v), 4)) for p, v in zip(data.parameters, r2)
            }
    outputs["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    state_file.write_text(json.dumps({"key": run_key, "finished": True}))
    return metrics


def _write_history(rows: list[dict], path: Path) -> None:
    import csv

    keys = ["epoch"] + sorted({k for r in rows for k in r if k != "epoch"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

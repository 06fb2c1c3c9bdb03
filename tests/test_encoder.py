"""The spectrum encoder: shapes, attention, learning, augmentation, checkpoints and resuming."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from galaxy_sbi.inference.metrics import r2_scores
from galaxy_sbi.spectra import realism
from galaxy_sbi.spectra.datasets import FamilyData
from galaxy_sbi.spectra.encoder import (
    Augmenter,
    EncoderModule,
    SpectrumEncoder,
    load_encoder,
    robust_loss,
    train_encoder,
)

PAPER = dict(filters=(128, 256, 512), kernels=(5, 11, 21), pooling=(5, 11), mlp_hidden=(128, 64, 32))
SMALL = dict(filters=(4, 4, 8), kernels=(5, 11, 21), pooling=(5, 11), mlp_hidden=(8,))


def synthetic_family(n=48, n_wave=256, seed=0) -> FamilyData:
    """Spectra whose line depth and slope encode two labels (a learnable toy problem)."""
    rng = np.random.default_rng(seed)
    wave = 5000.0 + 0.9 * np.arange(n_wave)
    t = rng.uniform(1, 13, n)
    met = rng.choice([-0.4, 0.0], n)
    line = np.exp(-0.5 * ((wave - 5100.0) / 3.0) ** 2)
    flux = 1.0 - (0.05 * t)[:, None] * line + (0.3 * met)[:, None] * (wave - wave.mean()) / np.ptp(wave)
    flux += 0.005 * rng.standard_normal(flux.shape)
    labels = np.stack([t * 0.8, t, met], axis=1)
    split = np.array(["train"] * (n - 16) + ["validation"] * 8 + ["test"] * 8)
    return FamilyData(
        flux=flux.astype(np.float32),
        labels=labels.astype(np.float32),
        split=split,
        sfh_index=np.arange(n) % (n // 2),
        cell=np.where(met < 0, "m-0.40", "m+0.00"),
        metallicity=met,
        alpha=None,
        wavelength=wave,
        parameters=["t10", "t50", "metallicity"],
        family="parametric",
        attrs={},
    )


@pytest.fixture(scope="module")
def settings(repo_root):
    cfg = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())["encoder"]
    cfg = copy.deepcopy(cfg)
    cfg.update(filters=[4, 4, 8], mlp_hidden=[8], head_hidden=[8], batch_size=16, max_epochs=3, learning_rate=3e-3)
    cfg["early_stopping"]["patience"] = 10
    return cfg


@pytest.mark.parametrize("widths", [SMALL, PAPER], ids=["small", "paper"])
def test_encoder_shapes_and_attention(widths):
    torch.manual_seed(0)
    enc = SpectrumEncoder(**widths, latent_dim=16).eval()
    x = torch.rand(3, 700) + 0.5
    assert enc(x).shape == (3, 16)
    weights = enc.attention_weights(x)
    assert weights.shape[:2] == (3, widths["filters"][-1] // 2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    assert torch.all(weights >= 0)
    module = EncoderModule(700, ["t10", "t50", "metallicity", "alpha"], **widths)
    assert module.predict_standardised(x).shape == (3, 4)
    assert module(x).shape == (3, 16)


def test_paper_encoder_on_full_spectra_has_the_expected_size():
    enc = SpectrumEncoder(**PAPER)
    x = torch.rand(2, 4300)
    with torch.no_grad():
        h, a = enc._downsample(x)
    assert h.shape == a.shape == (2, 256, 79)  # 4300 -> /5 -> 860 -> /11 -> 79 pixels, 512/2 channels each


def test_odd_filters_are_refused():
    with pytest.raises(ValueError, match="even"):
        SpectrumEncoder(filters=(4, 4, 7))


def test_logcosh_is_robust_and_stable():
    d = torch.tensor([0.0, 1e-3, 100.0])
    loss = robust_loss(d, torch.zeros(3))
    assert torch.isfinite(loss)
    np.testing.assert_allclose(float(robust_loss(torch.tensor([100.0]), torch.zeros(1))), 100 - np.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(robust_loss(torch.tensor([1e-2]), torch.zeros(1))), 0.5e-4, rtol=1e-3)


def test_a_few_optimisation_steps_lower_the_loss():
    L.seed_everything(1, verbose=False)
    data = synthetic_family()
    module = EncoderModule(data.flux.shape[1], data.parameters, **SMALL, head_hidden=(8,), learning_rate=3e-3)
    module.set_data_stats(data.wavelength, data.labels)
    x, y = torch.from_numpy(data.flux), torch.from_numpy(data.labels)
    target = (y - module.label_mean) / module.label_std
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = robust_loss(module.predict_standardised(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_torch_broadening_matches_the_realism_operator():
    data = synthetic_family(n=4)
    aug = Augmenter(data.wavelength, {})
    sigma = np.array([0.0, 50.0, 150.0, 400.0])
    out = aug.broaden(torch.from_numpy(data.flux), torch.tensor(sigma, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out, realism.broaden(data.flux, data.wavelength, sigma), atol=2e-5)


def _aug_settings(**kw):
    s = {
        "enabled": True,
        "probability": 1.0,
        "snr_range": [50.0, 50.0],
        "sigma_kms_range": [0.0, 0.0],
        "mask": {"probability": 0.0, "max_windows": 0, "width_angstrom": [10.0, 20.0]},
    }
    s.update(kw)
    return s


def test_augmentation_operators():
    data = synthetic_family(n=400, n_wave=512)
    flux = torch.from_numpy(data.flux)
    torch.manual_seed(0)
    assert torch.equal(Augmenter(data.wavelength, _aug_settings(probability=0.0))(flux), flux)
    noisy = Augmenter(data.wavelength, _aug_settings())(flux)
    ratio = float((noisy - flux).std() / flux.median())
    assert abs(ratio - 1 / 50) < 0.002  # noise at S/N 50 of the median flux
    fill = np.full(data.flux.shape[1], -7.0)  # the value masked pixels get (the encoder's training mean per pixel)
    masked = Augmenter(
        data.wavelength,
        _aug_settings(
            snr_range=[1e6, 1e6], mask={"probability": 1.0, "max_windows": 2, "width_angstrom": [20.0, 40.0]}
        ),
        fill=fill,
    )(flux)
    filled_frac = (masked == -7.0).float().mean(dim=1)
    assert torch.all(filled_frac > 0) and torch.all(filled_frac < 0.25)  # every spectrum has 1-2 windows of 20-40 A
    assert torch.equal(flux, torch.from_numpy(data.flux))  # the input is never modified


def test_augmentation_noise_takes_the_error_spectrum_shape(tmp_path):
    import xarray as xr

    data = synthetic_family(n=400, n_wave=512)
    flux = torch.from_numpy(data.flux)
    blue = np.arange(512) < 256
    shape = np.where(blue, 2.0, 1.0)
    xr.Dataset({"shape": (("source", "wavelength"), shape[None] / np.median(shape))}).to_netcdf(tmp_path / "e.nc")
    torch.manual_seed(0)
    settings = _aug_settings(error_spectra=str(tmp_path / "e.nc"), error_power_range=[1.0, 1.0])
    noise = (Augmenter(data.wavelength, settings)(flux) - flux) / flux.median(dim=1, keepdim=True).values
    assert float(noise[:, blue].std() / noise[:, ~blue].std()) == pytest.approx(2.0, rel=0.05)
    white = Augmenter(data.wavelength, {**settings, "error_power_range": [0.0, 0.0]})(flux) - flux
    assert float(white[:, blue].std() / white[:, ~blue].std()) == pytest.approx(1.0, rel=0.05)


def test_augmentation_only_in_training_and_only_when_enabled():
    data = synthetic_family(n=8)
    batch = (torch.from_numpy(data.flux), torch.from_numpy(data.labels))
    for enabled in (True, False):
        module = EncoderModule(
            data.flux.shape[1], data.parameters, **SMALL, augmentation=_aug_settings(enabled=enabled)
        )
        module.set_data_stats(data.wavelength, data.labels)
        module._trainer = SimpleNamespace(training=True)
        changed = not torch.equal(module.on_after_batch_transfer(batch)[0], batch[0])
        assert changed == enabled
        module._trainer = SimpleNamespace(training=False)  # validation / test / predict: clean spectra
        assert torch.equal(module.on_after_batch_transfer(batch)[0], batch[0])
        module._trainer = None


def test_training_writes_products_and_resumes_after_an_interruption(tmp_path, settings):
    data = synthetic_family()

    class Interrupt(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):  # killed after epochs 0 and 1 were checkpointed
            if trainer.current_epoch == 2:
                raise RuntimeError("node lost")

    with pytest.raises(RuntimeError, match="node lost"):
        train_encoder(data, tmp_path, settings, seed=3, progress=False, extra_callbacks=[Interrupt()])
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "metrics.json").exists()

    metrics = train_encoder(data, tmp_path, settings, seed=3, progress=False)
    assert metrics["resumed_from_epoch"] == 2  # epochs 0 and 1 were done, the run went on with epoch 2
    assert metrics["epochs_run"] == 3
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert set(metrics["r2_test"]) == {"t10", "t50", "metallicity"}
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in history[1:]] == [0, 1, 2]

    # the checkpoint alone encodes and predicts in physical units, with the training flux scaling
    model = load_encoder(tmp_path / "encoder.ckpt")
    torch.testing.assert_close(model.label_mean, torch.from_numpy(data.labels[data.split == "train"].mean(0)))
    assert model.hparams.input_scaling == settings["input_scaling"] == "pixel"
    torch.testing.assert_close(model.flux_mean, torch.from_numpy(data.flux[data.split == "train"].mean(0)))
    latents, pred = model.encode(data.flux)
    assert latents.shape == (48, 16) and pred.shape == (48, 3)
    np.testing.assert_allclose(
        r2_scores(data.labels[data.split == "test"], pred[data.split == "test"]),
        list(metrics["r2_test"].values()),
        atol=1e-4,
    )

    # a finished run is not resumed: a forced re-run, or changed settings, start afresh
    again = train_encoder(data, tmp_path, settings, seed=3, progress=False)
    assert again["resumed_from_epoch"] is None and again["epochs_run"] == 3


def test_pixel_input_scaling_standardises_every_pixel():
    data = synthetic_family()
    module = EncoderModule(data.flux.shape[1], data.parameters, **SMALL, input_scaling="pixel")
    module.set_data_stats(data.wavelength, data.labels, data.flux)
    scaled = module.scale_input(torch.from_numpy(data.flux)).numpy()
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-3)
    plain = EncoderModule(data.flux.shape[1], data.parameters, **SMALL)  # "none": the flux as it is
    assert torch.equal(plain.scale_input(torch.from_numpy(data.flux)), torch.from_numpy(data.flux))
    with pytest.raises(ValueError, match="needs the training flux"):
        module.set_data_stats(data.wavelength, data.labels)
    with pytest.raises(ValueError, match="unknown input_scaling"):
        EncoderModule(data.flux.shape[1], data.parameters, **SMALL, input_scaling="log")


def test_spectral_basis_is_the_training_spectra_principal_components_and_survives_a_checkpoint(tmp_path):
    """basis_components: the scaled flux's first k principal components, whitened (unit-variance coefficients on
    the training set, uncorrelated), fed to the MLP beside the pooled features; stored in the checkpoint."""
    data = synthetic_family(n=200)
    module = EncoderModule(data.flux.shape[1], data.parameters, **SMALL, input_scaling="pixel", basis_components=3)
    module.set_data_stats(data.wavelength, data.labels, data.flux)
    scaled = module.scale_input(torch.from_numpy(data.flux))
    coeff = (scaled @ module.encoder.basis.T).numpy().astype(float)
    np.testing.assert_allclose(np.cov(coeff.T), np.eye(3), atol=2e-3)
    # the leading components carry the line depth and slope, i.e. the labels: linear in the coefficients
    design = np.column_stack([coeff, np.ones(len(coeff))])
    for j in (1, 2):
        fit = design @ np.linalg.lstsq(design, data.labels[:, j], rcond=None)[0]
        assert np.corrcoef(fit, data.labels[:, j])[0, 1] ** 2 > 0.9
    assert module.encoder.mlp[0].in_features == module.encoder.n_feature + 3
    assert module(torch.from_numpy(data.flux[:5])).shape == (5, 16)
    trainer = L.Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    again = load_encoder(tmp_path / "m.ckpt")
    assert torch.equal(again.encoder.basis, module.encoder.basis)
    np.testing.assert_allclose(again.encode(data.flux[:5])[0], module.eval().encode(data.flux[:5])[0], atol=1e-6)
    few = EncoderModule(data.flux.shape[1], data.parameters, **SMALL, input_scaling="pixel", basis_components=20)
    few.set_data_stats(data.wavelength, data.labels[:8], data.flux[:8])  # 8 spectra span 7 directions
    assert torch.isfinite(few.encoder.basis).all() and (few.encoder.basis.abs().sum(1) == 0).sum() >= 13
    with pytest.raises(ValueError, match="needs n_wavelength"):
        SpectrumEncoder(**SMALL, basis_components=3)


def test_r2_scores():
    true = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    r2 = r2_scores(true, true + [[0.0, 0.0]])
    assert r2[0] == 1.0 and np.isnan(r2[1])

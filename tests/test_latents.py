"""Latent export (round trip) and the numbers behind the interpretation plots."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
import yaml
from test_encoder import synthetic_family

from galaxy_sbi.spectra.encoder import load_encoder, train_encoder
from galaxy_sbi.spectra.latents import (
    correlation_matrix,
    equivalent_width,
    export_latents,
    flux_correlation,
    interpretation_plots,
    subsample,
)


@pytest.fixture(scope="module")
def config(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config):
    settings = copy.deepcopy(config["encoder"])
    settings.update(filters=[4, 4, 8], mlp_hidden=[8], head_hidden=[8], batch_size=16, max_epochs=1)
    out = tmp_path_factory.mktemp("encoder")
    data = synthetic_family()
    train_encoder(data, out, settings, seed=5, progress=False)
    return data, out / "encoder.ckpt", settings


def test_export_round_trip(trained, tmp_path, config):
    data, ckpt, settings = trained
    path = export_latents(data, ckpt, tmp_path / "latents" / "parametric.nc", config["latents"]["batch_size"])
    with xr.open_dataset(path) as ds:
        assert ds["latents"].dims == ("sample", "latent") and ds["latents"].shape == (48, 16)
        assert list(ds["parameter"].values) == data.parameters
        np.testing.assert_array_equal(ds["labels"].values, data.labels)
        np.testing.assert_array_equal(ds["split"].values, data.split)
        np.testing.assert_array_equal(ds["sfh_index"].values, data.sfh_index)
        np.testing.assert_array_equal(ds["metallicity"].values, data.metallicity)
        np.testing.assert_array_equal(ds["cell"].values, data.cell)
        assert len(np.unique(ds["sample"].values)) == 48
        assert "alpha" not in ds.coords  # no [alpha/Fe] axis in these cubes
        assert ds.attrs["family"] == "parametric" and ds.attrs["config_hash"]
        latents, pred = load_encoder(ckpt).encode(data.flux)
        np.testing.assert_allclose(ds["latents"].values, latents, rtol=1e-6)
        np.testing.assert_allclose(ds["predicted_labels"].values, pred, rtol=1e-6)


def test_correlations_find_a_planted_signal():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 3))
    flux = rng.standard_normal((2000, 50)).astype(np.float32)
    flux[:, 10] = 2.0 * z[:, 0] + 0.01 * rng.standard_normal(2000)
    flux[:, 20] = -z[:, 1] + 1.0
    flux[:, 30] = 5.0  # constant pixel: correlation 0, not nan
    c = flux_correlation(z, flux, block=300)
    assert c.shape == (3, 50)
    assert c[0, 10] > 0.999 and c[1, 20] < -0.999 and c[:, 30].tolist() == [0, 0, 0]
    expected = np.corrcoef(np.hstack([z, flux[:, :5]]).T)[:3, 3:]
    np.testing.assert_allclose(c[:, :5], expected, atol=1e-6)
    z2 = np.column_stack([z, 3 * z[:, 0] + 1, np.ones(2000)])
    m = correlation_matrix(z2)
    np.testing.assert_allclose(m[:4, :4], np.corrcoef(z2[:, :4].T), atol=1e-10)
    assert m[0, 3] == pytest.approx(1.0) and m[4, 0] == 0 and m[4, 4] == 1


def test_equivalent_width_of_a_gaussian_line():
    wave = np.arange(4700.0, 5000.0, 0.9)
    sigma, depth = 3.0, 0.4
    flux = 2.0 * (1 - depth * np.exp(-0.5 * ((wave - 4861.3) / sigma) ** 2))
    ew = equivalent_width(np.vstack([flux, np.full_like(wave, 2.0)]), wave, "Hβ")
    assert ew[0] == pytest.approx(depth * sigma * np.sqrt(2 * np.pi), rel=0.02)
    assert ew[1] == pytest.approx(0.0, abs=1e-12)


def test_subsample_is_seeded_and_sorted():
    assert subsample(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    a, b = subsample(1000, 50, 1), subsample(1000, 50, 1)
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0) and len(a) == 50


@pytest.mark.slow
def test_interpretation_plots_are_written(trained, tmp_path, config):
    data, ckpt, settings = trained
    path = export_latents(data, ckpt, tmp_path / "p.nc", config["latents"]["batch_size"])
    outputs = {
        k: tmp_path / f"{k}.png" for k in ("distributions", "correlation", "flux_correlation", "umap", "performance")
    }
    cfg = copy.deepcopy(config["latents"])
    cfg["umap"].update(n_neighbors=5)
    with xr.open_dataset(path) as ds:
        interpretation_plots(ds.load(), data, outputs, cfg, seed=0)
    for p in outputs.values():
        assert p.stat().st_size > 10_000

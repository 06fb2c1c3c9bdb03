"""Emulator: learns a smooth map, saves and loads; the observables drop the redundant [H/Fe]."""

import numpy as np

from galaxy_sbi.chem import OUTPUT_LABELS
from galaxy_sbi.chem.datasets import OBS_LABELS, drop_h
from galaxy_sbi.chem.emulator import absolute_percentage_error, load_emulator, predict, save_emulator, train_emulator


def test_observables_drop_h_only():
    assert len(OBS_LABELS) == 8 and "[H/Fe]" not in OBS_LABELS
    x = np.arange(9.0)[None]
    np.testing.assert_array_equal(drop_h(x)[0], [v for v, lab in zip(x[0], OUTPUT_LABELS) if lab != "[H/Fe]"])


def test_emulator_learns_a_linear_map_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, 1, (3000, 6))
    w = rng.normal(size=(6, 8))
    x = theta @ w + 3.0
    model = train_emulator(
        theta[:2500],
        x[:2500],
        theta[2500:],
        x[2500:],
        theta_low=np.zeros(6),
        theta_high=np.ones(6),
        epochs=8,
        batch_size=64,
    )
    ape = absolute_percentage_error(predict(model, theta[2500:]), x[2500:])
    assert np.median(ape) < 5.0
    assert len(model.history["val_loss"]) == 8
    again = load_emulator(save_emulator(model, tmp_path / "e.pt"))
    np.testing.assert_allclose(predict(again, theta[:5]), predict(model, theta[:5]), rtol=1e-6)


def test_emulator_schedule_and_activation_options(tmp_path):
    """OneCycle + tanh trains, and both options survive a save/load round trip."""
    import pytest

    rng = np.random.default_rng(1)
    theta = rng.uniform(0, 1, (2000, 6))
    x = np.sin(theta @ rng.normal(size=(6, 8))) + 2.0
    model = train_emulator(
        theta[:1800],
        x[:1800],
        theta[1800:],
        x[1800:],
        theta_low=np.zeros(6),
        theta_high=np.ones(6),
        epochs=6,
        batch_size=64,
        learning_rate=3e-3,
        scheduler="onecycle",
        activation="tanh",
    )
    assert model.hparams.scheduler == "onecycle" and model.hparams.activation == "tanh"
    assert model.history["val_loss"][-1] < model.history["val_loss"][0]
    again = load_emulator(save_emulator(model, tmp_path / "e.pt"))
    assert again.hparams.activation == "tanh"
    np.testing.assert_allclose(predict(again, theta[:5]), predict(model, theta[:5]), rtol=1e-6)
    with pytest.raises(KeyError):
        train_emulator(
            theta[:100],
            x[:100],
            theta[100:120],
            x[100:120],
            theta_low=np.zeros(6),
            theta_high=np.ones(6),
            epochs=1,
            activation="nope",
        )

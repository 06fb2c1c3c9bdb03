"""NPE on the latents: parametrisations, train / save / load / sample in another process's shoes."""

import numpy as np
import pytest
import torch

from galaxy_sbi.inference.calibration import coverage_band, credibility_samples, empirical_coverage
from galaxy_sbi.inference.dequantise import dequantise, grid_cells, grid_values
from galaxy_sbi.inference.metrics import point_metrics
from galaxy_sbi.spectra.parametrisation import LabelParametrisation, order_violation_fraction
from galaxy_sbi.spectra.posterior import SpectraPosterior, evaluate_posterior, train_label_posterior

NAMES = [f"t{p}" for p in range(10, 100, 10)] + ["metallicity"]


def _settings(parametrisation, **overrides):
    """The npe settings of a small, fast flow (maf 16 x 2, 4 epochs) for the tests, with overrides."""
    return (
        dict(
            parametrisation=parametrisation,
            model="maf",
            hidden_features=16,
            num_transforms=2,
            batch_size=64,
            learning_rate=1e-3,
            max_epochs=4,
            stop_after_epochs=2,
            validation_fraction=0.1,
            prior_padding=0.05,
        )
        | overrides
    )


def _labels(n, rng):
    t = np.sort(rng.uniform(0.5, 13.5, (n, 9)), axis=1)
    return np.column_stack([t, rng.uniform(-2.0, 0.2, n)])


def test_log_gaps_round_trip_and_order():
    rng = np.random.default_rng(0)
    labels = _labels(200, rng)
    par = LabelParametrisation("log_gaps", NAMES)
    assert np.allclose(par.to_labels(par.to_theta(labels)), labels, atol=8 * par.min_gap)  # gaps floored at min_gap
    theta = par.to_theta(labels) + rng.normal(0, 2.0, labels.shape)  # any theta maps to ordered percentiles
    assert order_violation_fraction(par.to_labels(theta), NAMES) == 0.0
    naive = LabelParametrisation("naive", NAMES)
    assert order_violation_fraction(naive.to_labels(labels + rng.normal(0, 2.0, labels.shape)), NAMES) > 0.5
    with pytest.raises(ValueError):
        LabelParametrisation("ratios", NAMES)


def _linexp_labels(n, rng):
    from galaxy_sbi.spectra.sfh import linexp_percentiles

    t0, log_tau = rng.uniform(0.0, 5.0, n), rng.uniform(-0.5, 0.7, n)
    return np.column_stack([linexp_percentiles(t0, 10**log_tau, 0.0, 14.0), rng.uniform(-2.0, 0.2, n)])


def test_linexp_round_trip_order_and_guard():
    rng = np.random.default_rng(0)
    labels = _linexp_labels(300, rng)
    par = LabelParametrisation("linexp", NAMES, sfh_window=(0.0, 14.0))
    theta = par.to_theta(labels)
    assert theta.shape == (300, 3) and par.theta_names == ["t0", "log10_tau", "metallicity"]
    np.testing.assert_allclose(par.to_labels(theta), labels, atol=1e-8)
    # any theta in the box maps to ordered percentiles
    random_theta = np.column_stack(
        [rng.uniform(-0.2, 5.2, (1000, 1)), rng.uniform(-0.55, 0.75, (1000, 1)), rng.uniform(-2, 0.2, (1000, 1))]
    )
    assert order_violation_fraction(par.to_labels(random_theta[None]), NAMES) == 0.0
    with pytest.raises(ValueError, match="sfh_window"):
        LabelParametrisation("linexp", NAMES)
    settings = _settings(
        "linexp", sfh_window=(0.0, 14.0), hidden_features=8, num_transforms=1, max_epochs=1, stop_after_epochs=1
    )
    # labels that are not those of linear-exponential SFHs are refused
    with pytest.raises(ValueError, match="not those of linear-exponential"):
        train_label_posterior(_labels(100, rng), rng.normal(size=(100, 4)), NAMES, settings)


def test_linexp_posterior_saves_and_reloads(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    labels = _linexp_labels(400, rng)
    x = np.column_stack([labels[:, [0, 4, 8, 9]]]) + rng.normal(0, 0.05, (400, 4))
    settings = _settings("linexp", sfh_window=(0.0, 14.0), max_epochs=3)
    post = train_label_posterior(labels[:350], x[:350], NAMES, settings, seed=0)
    loaded = SpectraPosterior.load(post.save(tmp_path / "p.pt"))
    assert loaded.parametrisation.kind == "linexp" and tuple(loaded.parametrisation.sfh_window) == (0.0, 14.0)
    ev = evaluate_posterior(loaded, x[350:], labels[350:], 30, seed=1)
    assert ev["metrics"]["order_violation_fraction"] == 0.0
    assert np.isfinite(ev["arrays"]["credibility_joint"]).all()
    # an observation far from the training set puts no sample in the prior box: an error by default, and an
    # evaluation told to skip such observations counts it and judges the rest
    far = x[350:360].copy()
    far[3] = 1e4
    est = loaded.posterior.posterior_estimator
    flow_sample = est.sample

    def flow_far_out(shape, condition):  # the flow for the far observation, as a flow that left the box does
        s = flow_sample(shape, condition=condition)
        return torch.where((condition[:, :1] > 1e3)[None], s + 100.0, s)

    monkeypatch.setattr(est, "sample", flow_far_out)
    with pytest.raises(RuntimeError, match="no posterior sample inside the prior box"):
        loaded.sample_theta(far, 30, seed=1)
    skipped = evaluate_posterior(loaded, far, labels[350:360], 30, seed=1, skip_unsupported=True)
    assert skipped["metrics"]["n_without_support"] == 1 and skipped["metrics"]["without_support"] == [3]
    assert (
        np.isnan(skipped["arrays"]["mean"][3]).all() and np.isfinite(np.delete(skipped["arrays"]["mean"], 3, 0)).all()
    )
    assert np.isfinite(skipped["metrics"]["labels"]["t50"]["r2"])


def test_point_metrics_known_values():
    true = np.arange(100.0)[:, None]
    m = point_metrics(true, true + 1.0, ["t50"])["t50"]
    assert (
        m["bias"] == 1.0 and m["scatter_nmad"] == 0.0 and m["rmse"] == 1.0 and m["r2"] == pytest.approx(1 - 1 / 833.25)
    )


def test_train_save_load_sample(tmp_path):
    rng = np.random.default_rng(1)
    labels = _labels(600, rng)
    x = np.column_stack([labels, labels[:, :4] ** 0.5]) + rng.normal(0, 0.05, (600, 14))
    settings = _settings("log_gaps")
    post = train_label_posterior(labels[:500], x[:500], NAMES, settings, seed=0)
    path = post.save(tmp_path / "posterior.pt")
    loaded = SpectraPosterior.load(path)
    assert loaded.names == NAMES and loaded.parametrisation.kind == "log_gaps"
    a = post.sample_labels(x[500:520], 30, seed=3)
    b = loaded.sample_labels(x[500:520], 30, seed=3)
    assert a.shape == (30, 20, 10) and np.allclose(a, b)  # same draws after a reload
    theta = loaded.sample_theta(x[500:520], 30, seed=3)
    inside = ((theta >= loaded.low - 1e-6) & (theta <= loaded.high + 1e-6)).all(-1)
    assert inside.mean() > 0.5 and np.all(np.isfinite(theta))  # leaked samples are resampled in-box
    ev = evaluate_posterior(loaded, x[500:], labels[500:], 40, seed=1000)
    assert ev["metrics"]["order_violation_fraction"] == 0.0
    assert set(ev["metrics"]["coverage"]["empirical"]) == set(NAMES) | {"joint"}
    assert not (tmp_path / "sbi-logs").exists()


def test_dequantise_spreads_each_value_over_its_cell():
    grid = [-2.2, -1.8, -1.0, 0.2]  # uneven spacing on purpose
    g, low, high = grid_cells(grid)
    np.testing.assert_allclose(low, [-2.4, -2.0, -1.4, -0.4])
    np.testing.assert_allclose(high, [-2.0, -1.4, -0.4, 0.8])
    rng = np.random.default_rng(0)
    values = np.repeat(g, 20000)
    d = dequantise(values, grid, rng)
    for v, lo, hi in zip(g, low, high):
        s = d[values == v]
        assert lo <= s.min() and s.max() <= hi
        assert s.mean() == pytest.approx(0.5 * (lo + hi), abs=0.01 * (hi - lo))
        assert s.std() == pytest.approx((hi - lo) / np.sqrt(12), rel=0.02)  # uniform over the cell
    with pytest.raises(ValueError, match="not on the grid"):
        dequantise([-2.2, -1.5], grid, rng)
    lenient = dequantise(np.full(1000, -1.5), grid, rng, strict=False)  # centred on itself, the nearest cell's width
    assert -1.5 - 0.3 <= lenient.min() and lenient.max() <= -1.5 + 0.3 and np.ptp(lenient) > 0.5
    # grids are found in fitted values (merged within 1e-4 of the range); continuous values are refused
    fitted = np.repeat([0.0, 0.1, 0.2], 50) + rng.normal(0, 1e-6, 150)
    np.testing.assert_allclose(grid_values(fitted), [0.0, 0.1, 0.2], atol=1e-6)
    with pytest.raises(ValueError, match="not a grid"):
        grid_values(rng.uniform(size=100))


def test_randomised_pit_calibrates_a_discrete_posterior():
    """A posterior over grid values that is exactly right (the truth is a draw from it) is calibrated when
    truth and samples are both dequantised; judged against the bare grid value the same posterior is not."""
    rng = np.random.default_rng(1)
    grid = np.linspace(-2.0, 0.0, 11)
    n, s = 4000, 400
    # per case: a posterior over three neighbouring grid values, and a truth drawn from it
    centre = rng.integers(1, 10, n)
    probs = rng.dirichlet([2.0, 2.0, 2.0], n)
    pick = lambda size: centre[None] - 1 + (rng.uniform(size=size + (1,)) > np.cumsum(probs, 1)[None]).sum(-1)
    truth = grid[pick((1, n))[0]]
    samples = grid[pick((s, n))]
    levels = np.linspace(0.05, 0.95, 19)
    lo, hi = coverage_band(n, levels, confidence=0.999)
    calibrated = empirical_coverage(
        credibility_samples(dequantise(samples, grid, rng)[..., None], dequantise(truth, grid, rng)[:, None]), levels
    )
    assert np.all((calibrated >= lo - 0.01) & (calibrated <= hi + 0.01))
    bare = empirical_coverage(credibility_samples(dequantise(samples, grid, rng)[..., None], truth[:, None]), levels)
    assert np.max(np.abs(bare - levels)) > 0.05  # the grid value sits at a cell centre: too often inside


def test_dequantised_training_saves_its_grid(tmp_path):
    rng = np.random.default_rng(3)
    labels = _linexp_labels(400, rng)
    grid = np.array([-2.0, -1.5, -1.0, -0.5, 0.0])
    labels[:, -1] = rng.choice(grid, 400)
    # t0 and tau on a grid too (the parametric family's), fitted back from the percentiles by linexp
    from galaxy_sbi.spectra.sfh import linexp_percentiles

    t0, log_tau = rng.choice([0.0, 1.0, 2.0, 3.0], 400), rng.choice([-0.2, 0.0, 0.2, 0.4], 400)
    labels[:, :9] = linexp_percentiles(t0, 10**log_tau, 0.0, 14.0)
    x = labels[:, [0, 4, 8, 9]] + rng.normal(0, 0.02, (400, 4))
    settings = _settings(
        "linexp",
        sfh_window=(0.0, 14.0),
        max_epochs=3,
        dequantise=["metallicity", "alpha", "t0", "log10_tau"],
    )
    post = train_label_posterior(labels[:350], x[:350], NAMES, settings, seed=0)
    assert list(post.grids) == ["metallicity", "t0", "log10_tau"]  # alpha is not among the labels
    np.testing.assert_allclose(post.grids["log10_tau"], [-0.2, 0.0, 0.2, 0.4], atol=1e-5)
    assert post.low[-1] < -2.25 and post.high[-1] > 0.25  # the prior holds the end cells
    loaded = SpectraPosterior.load(post.save(tmp_path / "p.pt"))
    np.testing.assert_allclose(loaded.grids["metallicity"], grid)
    ev = evaluate_posterior(loaded, x[350:], labels[350:], 30, seed=1)
    truth = ev["arrays"]["calibration_truth"]
    shift = truth - labels[350:]
    assert 0 < np.abs(shift[:, -1]).max() <= 0.25
    assert np.abs(shift[:, 4]).max() > 0.01  # t50 moves with its (t0, tau) cell
    t0_cell = LabelParametrisation("linexp", NAMES, sfh_window=(0.0, 14.0)).to_theta(truth)[:, 0] - t0[350:]
    assert np.all(np.abs(t0_cell) <= 0.5 + 1e-6)
    assert "dequantised" in ev["metrics"]["coverage"]
    # continuous (off-grid) truths are judged as they are: no spreading, no note
    off = evaluate_posterior(loaded, x[350:], labels[350:], 30, seed=1, dequantise=False)
    np.testing.assert_array_equal(off["arrays"]["calibration_truth"], labels[350:])
    assert "dequantised" not in off["metrics"]["coverage"]


def test_onecycle_schedule_learns_a_known_gaussian_posterior(rng):
    """The OneCycle trainer (sbi's flow and loss, our schedule): x = theta + N(0, 0.1) under a wide flat prior,
    so the posterior is N(x, 0.1) away from the edges. It runs exactly max_epochs and keeps its best epoch."""
    from galaxy_sbi.inference.npe import box_prior, sample, train_npe

    theta = rng.uniform(-3, 3, (4000, 2))
    x = theta + rng.normal(0, 0.1, theta.shape)
    prior = box_prior(np.full(2, -3.0), np.full(2, 3.0))
    post, summary = train_npe(
        theta,
        x,
        prior,
        model="nsf",
        hidden_features=32,
        num_transforms=2,
        batch_size=128,
        learning_rate=3e-3,
        max_epochs=30,
        seed=0,
        schedule="onecycle",
    )
    assert summary["schedule"] == "onecycle" and summary["epochs"] == 30 == len(summary["validation_loss"])
    assert summary["validation_loss"][summary["best_epoch"] - 1] == min(summary["validation_loss"])
    x_test = np.array([[-1.0, 0.5], [0.3, 1.2], [1.5, -0.7]])
    s = sample(post, x_test, 2000, seed=1)  # (S, N, 2)
    assert np.abs(s.mean(0) - x_test).max() < 0.06
    assert ((s.std(0) > 0.07) & (s.std(0) < 0.2)).all()  # 0.1, from a prior sd of 1.7 (30 short epochs)
    with pytest.raises(ValueError, match="schedule"):
        train_npe(theta, x, prior, max_epochs=1, schedule="cosine")


def test_onecycle_validation_by_whole_groups(rng):
    """validation_groups: the validation part is whole groups (e.g. every noise copy and [M/H] cell of an SFH)."""
    import torch
    from sbi.neural_nets import posterior_nn

    from galaxy_sbi.inference.npe import _train_onecycle

    # 52 "SFHs" of 8 simulations: 5 whole groups are 40 validation simulations, a random 10 % would be 41
    groups = np.repeat(np.arange(52), 8)
    theta = torch.as_tensor(rng.normal(size=(416, 2)), dtype=torch.float32)
    x = theta + 0.1 * torch.randn(416, 2)
    build = posterior_nn(model="maf", hidden_features=8, num_transforms=1)
    _, summary = _train_onecycle(
        build, theta, x, batch_size=64, learning_rate=1e-3, epochs=1, validation_fraction=0.1, seed=0,
        validation_groups=groups,
    )  # fmt: skip
    assert summary["n_validation"] == 5 * 8 and summary["validation_split"] == "whole groups"
    with pytest.raises(ValueError, match="validation_groups needs"):
        from galaxy_sbi.inference.npe import box_prior, train_npe

        train_npe(theta.numpy(), x.numpy(), box_prior(np.full(2, -5.0), np.full(2, 5.0)), max_epochs=1,
                  validation_groups=groups)  # fmt: skip


def test_sampling_rejects_outside_the_prior_and_does_not_duplicate(rng):
    """True rejection: every sample inside the box, none repeated (the old sampler redrew in-box samples with
    replacement), also for an observation at the box edge where much of the flow's mass leaks out."""
    from galaxy_sbi.inference.npe import box_prior, sample, train_npe

    theta = rng.uniform(-3, 3, (2000, 2))
    x = theta + rng.normal(0, 0.5, theta.shape)
    prior = box_prior(np.full(2, -3.0), np.full(2, 3.0))
    post, _ = train_npe(theta, x, prior, model="maf", hidden_features=16, num_transforms=2, max_epochs=5, seed=0)
    s = sample(post, np.array([[2.9, 2.9], [0.0, 0.0], [-2.9, 1.0]]), 500, seed=1)
    assert s.shape == (500, 3, 2) and (s >= -3).all() and (s <= 3).all()
    assert all(len(np.unique(s[:, i, 0])) == 500 for i in range(3))
    assert np.array_equal(s, sample(post, np.array([[2.9, 2.9], [0.0, 0.0], [-2.9, 1.0]]), 500, seed=1))


def test_ordered_posterior_keeps_only_ordered_samples_and_reloads(tmp_path):
    """The ordered kind: the naive flow (theta = labels) restricted to t10 < t20 by rejection; x that leaves the
    naive samples often out of order leaves the ordered ones never, and none is a repeat."""
    names = ["t10", "t20", "metallicity"]
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0.5, 13.5, (600, 2)), axis=1)
    labels = np.column_stack([t, rng.uniform(-2.0, 0.2, 600)])
    x = labels + rng.normal(0, 1.0, labels.shape)  # posteriors ~1 Gyr wide: t10 and t20 overlap
    settings = _settings("ordered")
    post = train_label_posterior(labels[:500], x[:500], names, settings, seed=0)
    assert post.parametrisation.theta_names == names
    loaded = SpectraPosterior.load(post.save(tmp_path / "posterior.pt"))
    assert loaded.parametrisation.kind == "ordered"
    ordered = loaded.sample_labels(x[500:520], 200, seed=3)
    assert order_violation_fraction(ordered, names) == 0.0
    assert all(len(np.unique(ordered[:, i, 0])) == 200 for i in range(20))
    loaded.parametrisation = LabelParametrisation("naive", names)
    assert order_violation_fraction(loaded.sample_labels(x[500:520], 200, seed=3), names) > 0.05


def test_conditioning_columns_name_the_noise_free_case_and_check_their_inputs():
    from galaxy_sbi.spectra.conditioning import CLEAN_LOG10_SNR, conditioning_columns

    cols = conditioning_columns(["log10_snr"], 3, np.array([np.inf, 20.0, 5000.0]))
    np.testing.assert_allclose(cols[:, 0], [CLEAN_LOG10_SNR, np.log10(20.0), CLEAN_LOG10_SNR])
    both = conditioning_columns(["blue_mask", "log10_snr"], 2, None, blue_mask=True)  # scalars broadcast, in order
    np.testing.assert_array_equal(both, [[1.0, CLEAN_LOG10_SNR]] * 2)
    with pytest.raises(ValueError, match="unknown conditioning"):
        conditioning_columns(["snr"], 2, 10.0)
    with pytest.raises(ValueError, match="positive"):
        conditioning_columns(["log10_snr"], 1, 0.0)


def test_a_posterior_told_the_snr_narrows_with_it_and_reloads_knowing_it(tmp_path, rng):
    """x = theta + noise of sd 1 / S/N (noise-free rows: none): told log10 S/N, one posterior is narrow at high S/N
    and wide at low S/N; it saves what it was told, and an untold posterior takes the latents as they are."""
    names = ["t50", "metallicity"]
    n = 4000
    labels = np.column_stack([rng.uniform(1.0, 12.0, n), rng.uniform(-2.0, 0.4, n)])
    snr = np.where(rng.uniform(size=n) < 0.5, np.inf, 10 ** rng.uniform(-0.5, 1.0, n))  # half noise-free, 0.3-10
    latents = labels + rng.normal(size=labels.shape) / snr[:, None]
    settings = _settings(
        "naive", model="nsf", hidden_features=32, num_transforms=2, batch_size=128, learning_rate=3e-3, max_epochs=20
    )
    told = SpectraPosterior(None, None, None, None, info={"conditioning": ["log10_snr"]})
    x = told.inputs(latents, snr)
    assert x.shape == (n, 3) and x[np.isinf(snr), 2].min() == 3.0
    post = train_label_posterior(
        labels, x, names, settings | {"schedule": "onecycle"}, seed=0, conditioning=["log10_snr"]
    )
    post.save(tmp_path / "told.pt")
    loaded = SpectraPosterior.load(tmp_path / "told.pt")
    assert loaded.conditioning == ["log10_snr"]
    truth = np.array([[6.0, -0.8]])
    sd = {s: loaded.sample_labels(loaded.inputs(truth, s), 500, seed=1)[:, 0].std(0) for s in (None, 10.0, 0.5)}
    # noise sd 2 / 0.1 / 0 (measured 1.20 / 0.74 / 0.20: a small flow after 20 epochs, but ordered by S/N)
    assert sd[0.5][0] > 3 * sd[None][0] and sd[0.5][0] > sd[10.0][0] > sd[None][0]
    assert 0.8 < sd[0.5][0] < 3.0
    untold = train_label_posterior(labels, latents, names, settings | {"max_epochs": 1}, seed=0)
    assert untold.conditioning == []
    np.testing.assert_array_equal(untold.inputs(latents, 20.0), latents)


def test_noise_aware_training_set_gives_every_row_its_snr():
    from galaxy_sbi.spectra.latents import noise_aware_training_set

    class Encoder:  # the latents: the flux's first 100 pixels
        def encode(self, flux, batch_size=512):
            return (np.asarray(flux)[:, :100],)

    flux = np.ones((50, 120))
    x, labels, snr = noise_aware_training_set(
        flux[:, :100], np.arange(50.0)[:, None], flux, Encoder(), {"snr_range": [10.0, 100.0], "copies": 2}, 0, "toy"
    )
    assert x.shape == (150, 100) and labels.shape == (150, 1)
    np.testing.assert_array_equal(labels[:, 0], np.tile(np.arange(50.0), 3))
    assert np.isinf(snr[:50]).all() and (snr[50:] >= 10).all() and (snr[50:] <= 100).all()
    np.testing.assert_array_equal(x[:50], flux[:50, :100])  # the clean rows untouched
    sd = np.std(x[50:] - 1.0, axis=1)  # each noisy row's scatter follows its S/N (sigma = median / S/N)
    np.testing.assert_allclose(sd, 1 / snr[50:], rtol=0.25)


def test_the_prior_box_of_the_percentiles_stops_at_the_big_bang_and_t_obs(rng):
    labels = _labels(300, rng)  # t in (0.5, 13.5): padded by 5 % of the width, the box would reach 0.5 - 0.65 < 0
    labels[:, :9] = np.clip(labels[:, :9] - 0.45, 0.01, 13.75)
    labels[:10, 8] = 13.75  # SFHs that end at the observation
    settings = _settings("naive", max_epochs=1)
    post = train_label_posterior(labels, labels + 0.1, NAMES, settings, time_range=(0.0, 13.8))
    low, high = np.asarray(post.low), np.asarray(post.high)
    assert (low[:9] >= 0.0).all() and (high[:9] <= 13.8).all()
    assert low[0] == 0.0 and high[8] == 13.8  # clipped where the padding would cross them (t10 low, t90 high)
    assert low[9] < labels[:, 9].min() and high[9] > labels[:, 9].max()  # [M/H] keeps its padding
    samples = post.sample_labels(labels[:5] + 0.1, 200, seed=0)
    assert samples[..., :9].min() >= 0.0 and samples[..., :9].max() <= 13.8
    gaps = train_label_posterior(labels, labels + 0.1, NAMES, _settings("log_gaps", max_epochs=1), time_range=(0, 13.8))
    assert np.asarray(gaps.low)[0] == 0.0 and np.asarray(gaps.low)[1] < 0  # t10 only; the log-gaps are not times
    unclipped = train_label_posterior(labels, labels + 0.1, NAMES, settings)
    assert np.asarray(unclipped.low)[0] < 0


def test_npe_training_sets_tell_the_npe_what_each_copy_carries():
    """npe.noise.inputs: [] and [log10_snr] give white-noise copies, the full set observation-like ones whose every
    chunk of spectra carries one drawn setting, told to the NPE; noise-free rows are told (3, 0, 0)."""
    from types import SimpleNamespace

    from galaxy_sbi.spectra.conditioning import CHUNK, npe_training_set

    class Encoder:  # the latents: the mean of the blue and the red half, and the flux scatter
        hparams = SimpleNamespace(input_scaling="none")

        def encode(self, flux, batch_size=512):
            f = np.asarray(flux, float)
            return (np.column_stack([f[:, :200].mean(1), f[:, 200:].mean(1), f.std(1)]),)

    wave = np.linspace(3540.5, 7409.6, 400)
    n = 3 * CHUNK
    flux = np.ones((n, len(wave))) + 0.1 * np.sin(wave / 20.0)[None]  # absorption-like structure to broaden
    x = Encoder().encode(flux)[0]
    labels = np.arange(float(n))[:, None]
    noise = {
        "snr_range": [10.0, 100.0],
        "copies": 2,
        "sigma_kms_range": [0.0, 350.0],
        "mask_probability": 0.5,
        "instrument": {"instrumental_fwhm_angstrom": 2.76, "blue_mask_below_angstrom": 3800.0},
    }
    white, _, told = npe_training_set(x, labels, flux, wave, Encoder(), noise | {"inputs": []}, 0, "toy")
    assert white.shape == (3 * n, 3) and told == []
    snr_only, _, told = npe_training_set(x, labels, flux, wave, Encoder(), noise | {"inputs": ["log10_snr"]}, 0, "toy")
    assert told == ["log10_snr"] and (snr_only[:n, 3] == 3.0).all() and (snr_only[n:, 3] <= 2.0).all()
    full_inputs = ["log10_snr", "sigma_100kms", "blue_mask"]
    full, lab, told = npe_training_set(x, labels, flux, wave, Encoder(), noise | {"inputs": full_inputs}, 0, "toy")
    assert told == full_inputs and full.shape == (3 * n, 6)
    np.testing.assert_array_equal(full[:n, 3:], np.tile([3.0, 0.0, 0.0], (n, 1)))
    cond = full[n:, 3:]
    assert (
        (cond[:, 0] >= 1.0).all()
        and (cond[:, 0] <= 2.0).all()
        and (cond[:, 1] >= 0).all()
        and (cond[:, 1] <= 3.5).all()
    )
    settings = {tuple(r) for r in cond.round(6)}
    assert len(settings) == 2 * n // CHUNK  # one drawn setting per chunk and copy
    assert sorted(lab[n:, 0]) == sorted(np.tile(labels[:, 0], 2))  # every spectrum once per copy, shuffled
    # the copies carry what they are told: the noise in the flux scatter falls as the told S/N rises
    scatter = full[n:, 2] - x[0, 2]
    assert np.corrcoef(scatter, cond[:, 0])[0, 1] < -0.5
    with pytest.raises(ValueError, match="npe.noise.inputs"):
        npe_training_set(x, labels, flux, wave, Encoder(), noise | {"inputs": ["sigma_100kms"]}, 0, "toy")

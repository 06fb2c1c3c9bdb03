"""The spectra graph's baselines: the continuous forward model emcee samples, emcee's posterior, pPXF's template
export and the mass-weight percentiles, the comparison table."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from galaxy_sbi.spectra import baselines
from galaxy_sbi.spectra.mcmc import LinexpSpectrumModel, fit_emcee
from galaxy_sbi.spectra.ppxf_baseline import fit_ppxf, percentiles_from_mass_weights, write_sps_templates
from galaxy_sbi.spectra.sfh import linear_grid, linexp_cumulative
from galaxy_sbi.spectra.synth import forward, native_weights

WAVE = np.arange(3540.5, 7409.7, 0.9)
AGES = np.array([0.03, 0.1, 0.3, 1.0, 2.0, 4.0, 7.0, 10.0, 14.0])
METALS = np.array([-1.0, -0.5, 0.0])
TIME = {"start": 0.0, "stop": 14.0, "step": 0.01}


@pytest.fixture(scope="module")
def grid():
    """A toy SSP grid: a blue-to-red continuum whose slope grows with age, absorption lines whose depths grow with
    age and [M/H] (each template differs from every other)."""
    x = (WAVE - WAVE.mean()) / np.ptp(WAVE)
    lines = [3934, 3969, 4102, 4304, 4861, 5175, 5270, 5890, 6563]
    flux = np.empty((len(METALS), len(AGES), len(WAVE)))
    for i, z in enumerate(METALS):
        for j, a in enumerate(AGES):
            la = np.log10(a)
            cont = np.exp(-0.8 * (la + 1.5) * x) / (1 + 0.3 * la)
            # not linear in [M/H] (else a template would be the mean of its neighbours)
            depth = [0.15 + 0.08 * la + 0.1 * (10**z - 0.5) * (k % 3 - 1) + 0.05 * z**2 for k in range(len(lines))]
            absorb = sum(d * np.exp(-0.5 * ((WAVE - c) / 4.0) ** 2) for d, c in zip(depth, lines))
            flux[i, j] = cont * (1 - absorb) * (1 + 0.3 * (j % 2) * np.sin(WAVE / 300))
    return xr.Dataset(
        {"flux": (("metallicity", "age", "wavelength"), flux)},
        coords={"metallicity": METALS, "age": AGES, "wavelength": WAVE},
    )


def test_the_continuous_model_is_the_training_forward_model(grid):
    """On a grid metallicity it is synth.forward of the SFH cubes' weights; between two it mixes them linearly."""
    model = LinexpSpectrumModel.from_grid(grid, TIME)
    t = linear_grid(**TIME)
    t0, tau = 2.3, 1.4
    W = native_weights(t, linexp_cumulative(t, np.array([t0]), np.array([tau])), AGES, t[-1])[0]
    for k, z in enumerate(METALS):
        expect, _ = forward(W, grid["flux"].values[k])
        np.testing.assert_allclose(model([t0, np.log10(tau), z]), expect[0], rtol=2e-6)
    mixed_ssps = 0.75 * grid["flux"].values[0] + 0.25 * grid["flux"].values[1]  # [M/H] -0.875
    np.testing.assert_allclose(model([t0, np.log10(tau), -0.875]), forward(W, mixed_ssps)[0][0], rtol=2e-6)


def test_the_continuous_model_is_the_cubes_continuous_metallicity_model(grid):
    """On the native library it gives the cubes' spectra at any [M/H] (off_grid.continuous_spectra, which
    spectra.metallicity_sampling: continuous uses), so the true parameters reproduce a test spectrum."""
    from galaxy_sbi.spectra.off_grid import continuous_spectra

    model = LinexpSpectrumModel.from_grid(grid, TIME)
    t = linear_grid(**TIME)
    t0, tau = 3.1, 0.8
    W = native_weights(t, linexp_cumulative(t, np.array([t0]), np.array([tau])), AGES, t[-1])[0]
    for z in (-0.93, -0.41, -0.02):
        expect, _ = continuous_spectra(W, grid, np.array([z]))
        np.testing.assert_allclose(model([t0, np.log10(tau), z]), expect[0], rtol=1e-5)


def test_the_native_library_at_the_grids_alpha(grid):
    assert baselines.library_at_alpha(grid, grid) is grid  # no alpha axis: as it is
    alphas = xr.concat([grid, grid * 2.0], dim=xr.DataArray([0.0, 0.4], dims="alpha", name="alpha"))
    at = baselines.library_at_alpha(alphas, grid.assign_coords(alpha=0.1))  # single_alpha's grid
    np.testing.assert_allclose(at["flux"].values, 1.25 * grid["flux"].values)  # linear between the native models
    assert "alpha" not in at["flux"].dims


def test_emcee_posterior_of_a_high_snr_spectrum_covers_its_truth(grid):
    model = LinexpSpectrumModel.from_grid(grid, TIME)
    truth = np.array([2.3, np.log10(1.4), -0.62])
    snr = 100.0
    obs = model(truth) + np.random.default_rng(3).normal(0, 1 / snr, len(WAVE))
    fit = fit_emcee(
        obs, 1 / snr, model, [0, -0.5, -1.0], [5, 0.7, 0.0], seed=2, n_walkers=16, chunk=250, max_steps=6000
    )
    assert fit["converged"] and len(fit["samples"]) >= 16 * 45 * 2  # >= 45 tau kept, thinned by tau / 2
    labels = model.labels(*fit["samples"].T, percentiles=[10, 50, 90])
    true_labels = model.labels([truth[0]], [truth[1]], [truth[2]], [10, 50, 90])[0]
    lo, hi = np.percentile(labels, [0.5, 99.5], axis=0)
    assert np.all((lo <= true_labels) & (true_labels <= hi)), (lo, true_labels, hi)
    assert fit["calls"] > fit["steps"] * 16 * 0.99


def test_the_broadened_model_is_the_broadened_spectrum(grid):
    """emcee's model at a setting (its SSP basis broadened once) gives the spectrum the baselines' degradation makes
    of the model's own spectrum (broadened to the instrument and sigma, median-normalised)."""
    model = LinexpSpectrumModel.from_grid(grid, TIME)
    setting = {"snr": 50.0, "sigma_kms": 200.0}
    deg = baselines.degradation(setting, WAVE, {"instrumental_fwhm_angstrom": 2.76, "blue_mask_below_angstrom": 3800})
    assert deg.sigma_kms.min() > 200.0 and not np.any(~deg.good)  # instrument on top of sigma; no mask
    broad = model.broadened(WAVE, deg.sigma_kms)
    theta = [3.0, np.log10(0.9), -0.4]
    np.testing.assert_allclose(broad(theta), deg.noiseless(model(theta)[None])[0], rtol=1e-6)
    assert np.std(broad(theta) - model(theta)) > 1e-3 and model.n_calls == 2 and broad.n_calls == 2
    noisy, sigma = baselines.degraded(model(theta)[None], deg, setting, seed=1, family="parametric")
    assert sigma == 1 / 50 and 0.8 < np.std(noisy[0] - broad(theta)) * 50 < 1.2


def test_ppxf_templates_at_the_instrument_fit_the_galaxys_sigma(grid, tmp_path):
    """Templates broadened to the instrument (load_templates' fwhm_gal): pPXF's sigma of a spectrum broadened to the
    instrument plus 150 km/s is those 150 km/s."""
    from galaxy_sbi.spectra.ppxf_baseline import load_templates

    path = write_sps_templates(grid, tmp_path / "sps.npz")
    setting = {"snr": 200.0, "sigma_kms": 150.0}
    deg = baselines.degradation(setting, WAVE, {"instrumental_fwhm_angstrom": 2.76, "blue_mask_below_angstrom": 3800})
    spec = deg.noiseless(grid["flux"].values[1, 5][None])[0]
    noisy = spec + np.random.default_rng(0).normal(0, 1 / 200, len(WAVE))
    fit = fit_ppxf(WAVE, noisy, 1 / 200, load_templates(path, WAVE, fwhm_gal=2.76), t_obs=14.0, t_start=0.0,
                   percentiles=[50], n_bootstrap=0, seed=1)  # fmt: skip
    assert fit["sigma_kms"] == pytest.approx(150.0, abs=10.0)


def test_a_template_fitted_with_its_own_templates_gets_all_the_weight(grid, tmp_path):
    from ppxf import ppxf_util, sps_util
    from ppxf.ppxf import ppxf

    path = write_sps_templates(grid, tmp_path / "sps.npz")
    with np.load(path) as d:
        assert d["templates"].shape == (len(WAVE), len(AGES), len(METALS)) and d["fwhm"][0] == 2.51
    spec = grid["flux"].values[1, 5]  # [M/H] -0.5, 4 Gyr
    gal, ln_lam, velscale = ppxf_util.log_rebin(WAVE, spec / np.median(spec))
    sps = sps_util.sps_lib(str(path), velscale, norm_range=None)
    cut = slice(40, len(gal) - 40)
    pp = ppxf(
        sps.templates.reshape(sps.templates.shape[0], -1),
        gal[cut],
        np.full(len(gal[cut]), 0.01),
        velscale,
        start=[0, 10],
        degree=-1,
        lam=np.exp(ln_lam[cut]),
        lam_temp=sps.lam_temp,
        bounds=[[-500, 500], [1, 1000]],
        quiet=True,
    )
    w = pp.weights.reshape(len(AGES), len(METALS))
    assert np.unravel_index(w.argmax(), w.shape) == (5, 1) and w.max() / w.sum() > 0.99


def test_mass_weights_become_percentile_times():
    ages = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.zeros((4, 2))
    w[2, 0] = 1.0  # all mass at age 3 Gyr: formed in its bin [2.5, 3.5] Gyr ago
    t = percentiles_from_mass_weights(w, ages, t_obs=10.0, t_start=0.0, percentiles=[10, 50, 90])
    np.testing.assert_allclose(t, [6.6, 7.0, 7.4])
    flat = percentiles_from_mass_weights(np.ones((4, 1)), ages, 10.0, 0.0, [50])
    assert flat[0] == pytest.approx(10.0 - 2.5)  # bins [0.5, 4.5] Gyr ago: the median is 2.5 Gyr ago
    # the oldest template older than the SFH window (its bin clipped to zero width): formed at the start
    old = np.zeros((4, 1))
    old[3] = 1.0
    np.testing.assert_allclose(percentiles_from_mass_weights(old, ages, 3.5, 0.0, [10, 50, 90]), 0.0)
    old[0] = 1.0  # the other half at 1 Gyr ago: bin [0.5, 1.5] Gyr ago, i.e. t in [2.0, 3.0]
    np.testing.assert_allclose(percentiles_from_mass_weights(old, ages, 3.5, 0.0, [40, 75]), [0.0, 2.5], atol=1e-12)


def test_ppxf_recipe_recovers_a_clean_population(grid, tmp_path):
    """The regularised fit of a noiseless one-population spectrum puts t50 and [M/H] near the truth."""
    path = write_sps_templates(grid, tmp_path / "sps.npz")
    spec = grid["flux"].values[2, 6]
    fit = fit_ppxf(WAVE, spec / np.median(spec) + 1e-4 * np.random.default_rng(0).standard_normal(len(WAVE)), 1e-4,
                   path, t_obs=14.0, t_start=0.0, percentiles=[50], n_bootstrap=2, seed=1)  # fmt: skip
    assert abs(fit["labels"][0] - (14.0 - 7.0)) < 1.5 and abs(fit["labels"][1] - 0.0) < 0.15
    assert np.all(np.isfinite(fit["bootstrap_sd"]))
    # the regularisation recipe: regul raised until chi^2 grew by ~sqrt(2 N_good) over the unregularised fit
    assert fit["chi2"] <= fit["chi2_target"] and fit["chi2_target"] - fit["chi2"] < 0.5 * (fit["chi2_target"] - 4000)


def test_table_rows_and_speedups():
    truth = np.zeros((4, len(baselines.LABELS)))
    results = []
    for method, sec, err in (("anpe", 0.01, 0.1), ("emcee", 100.0, 0.05), ("ppxf", 10.0, 0.3)):
        rows = [
            {"estimate": truth[i] + err, "low": truth[i] - 1, "high": truth[i] + 1, "seconds": sec} for i in range(4)
        ]
        results.append({"family": "parametric", "snr": 20.0, "method": method, "rows": rows, "truth": truth})
    table = baselines.table_rows(results)
    assert [r["method"] for r in table] == ["anpe", "emcee", "ppxf"]
    assert table[0]["abs_error_t50"] == pytest.approx(0.1) and table[0]["coverage_68"] == 1.0
    assert np.isnan(table[2]["coverage_68"])  # pPXF's bootstrap band is not a posterior
    speed = {s["method"]: s for s in baselines.ratios(table, anpe_training_seconds={"parametric": 1000.0})}
    assert speed["emcee"]["speedup_per_spectrum"] == pytest.approx(1e4)
    assert speed["ppxf"]["break_even_spectra"] == pytest.approx(1000.0 / 9.99)
    assert speed["ppxf"]["t50_error_ratio_method_to_anpe"] == pytest.approx(3.0)
    md = baselines.markdown(table, list(speed.values()), "test machine", {"parametric": 1000.0})
    assert "| parametric | 20 | 0 | emcee | 4 |" in md and "1e+04×" in md
    # each family's break-even counts its own training
    other = [{**r, "family": "nonparametric"} for r in results if r["method"] != "emcee"]
    both = baselines.ratios(baselines.table_rows(results + other), {"parametric": 1000.0, "nonparametric": 10.0})
    np.testing.assert_allclose(
        [s["break_even_spectra"] for s in both if s["method"] == "ppxf"], [1000 / 9.99, 10 / 9.99]
    )


def test_comparison_settings_and_their_keys():
    chosen = baselines.comparison_settings({"settings": [{"snr": 100}, {"snr": 20.0, "sigma_kms": 200}]})
    assert chosen == [{"snr": 100.0, "sigma_kms": 0.0}, {"snr": 20.0, "sigma_kms": 200.0}]  # sigma 0 unless given
    assert [baselines.setting_key(c) for c in chosen] == ["snr100_sigma0", "snr20_sigma200"]


def test_emcee_likelihood_is_free_of_the_spectrums_normalisation(grid):
    """A noiseless spectrum off the model's scale by 0.2 % (what dividing a noisy spectrum by its own median does)
    still peaks at its truth, and its log-likelihood there is the scale integral alone (chi^2 0)."""
    from galaxy_sbi.spectra.mcmc import log_probability

    model = LinexpSpectrumModel.from_grid(grid, TIME)
    truth = np.array([2.3, np.log10(1.4), -0.62])
    low, high = np.array([0, -0.5, -1.0]), np.array([5, 0.7, 0.0])
    obs, sigma = 1.002 * model(truth), 0.01
    at_truth = log_probability(truth, model, obs, sigma, low, high)
    m = model(truth) / sigma
    assert at_truth == pytest.approx(-0.5 * np.log(m @ m), abs=1e-6)
    for step in np.eye(3) * [0.05, 0.02, 0.02]:
        assert log_probability(truth + step, model, obs, sigma, low, high) < at_truth
        assert log_probability(truth - step, model, obs, sigma, low, high) < at_truth

"""The workflow as a user runs it: lint, dry run, and a tiny real run in a scratch directory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import xarray as xr


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory):
    """One scratch workdir for the spectra-graph stage tests: later stages reuse the earlier stages' products
    (each test still builds whatever is missing, so it also passes alone)."""
    return tmp_path_factory.mktemp("tiny_run")


def snakemake(repo_root, workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo_root / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_lint_is_clean(repo_root, tmp_path):
    result = snakemake(repo_root, tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_dry_run_lists_the_stages(repo_root, tmp_path):
    result = snakemake(repo_root, tmp_path, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr
    for rule in ("ssp_library", "ssp_interpolate", "ssp_overview_plot"):
        assert rule in result.stdout


@pytest.mark.slow
def test_tiny_run_builds_the_ssp_stage(repo_root, tiny_workdir):
    tmp_path = tiny_workdir  # shared with the other stage tests: each builds on the products before it
    result = snakemake(repo_root, tmp_path, "ssp", "--cores", "2", "--configfile", str(repo_root / "tests/configs/tiny.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with xr.open_dataset(tmp_path / "results/ssp/ssp_library.nc") as lib:
        assert lib.flux.dims == ("metallicity", "age", "wavelength")
        assert lib.flux.shape == (2, 4, 4300)
        assert lib.attrs["source"] == "fastar"
        assert lib.attrs["config_hash"]
    with xr.open_dataset(tmp_path / "results/ssp/ssp_grid.nc") as grid:
        assert grid.metallicity.values.tolist() == [-0.2, 0.0]
        assert "alpha" not in grid.dims
        assert "no [alpha/Fe] axis" in grid.attrs["requested_alphas_ignored"]
    assert (tmp_path / "results/ssp/ssp_overview.png").stat().st_size > 10_000

    # Changing only the interpolation grid re-runs the interpolation, not the expensive library.
    change = tmp_path / "change.yaml"
    change.write_text("ssp:\n  interpolate:\n    metallicities: [-0.1]\n    alphas: [0.0]\n")
    rerun = snakemake(repo_root, tmp_path, "ssp", "-n", "--cores", "1", "--configfile",
                      str(repo_root / "tests/configs/tiny.yaml"), str(change))
    assert rerun.returncode == 0, rerun.stderr
    assert scheduled_jobs(rerun.stdout) - {"ssp"} == {"ssp_interpolate"}  # "ssp" is the target rule itself


def scheduled_jobs(dry_run_stdout: str) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run (without the 'total' row)."""
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0] for line in table if line.split() and line.split()[0] != "total"}


def test_slurm_profile_loads(repo_root, tmp_path):
    """The cluster profile parses and its executor plugin is installed (a dry run submits nothing)."""
    result = snakemake(repo_root, tmp_path, "--profile", str(repo_root / "profiles/slurm"), "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ssp_library" in result.stdout


@pytest.mark.slow
def test_tiny_run_builds_the_spectra_stage(repo_root, tiny_workdir):
    tmp_path = tiny_workdir  # shared with the other stage tests: each builds on the products before it
    import numpy as np

    tiny = str(repo_root / "tests/configs/tiny.yaml")
    dry = snakemake(repo_root, tmp_path, "spectra", "-n", "--cores", "1", "--configfile", tiny)
    assert dry.returncode == 0, dry.stderr
    counts = job_counts(dry.stdout)
    assert counts["spectra_cell"] == 2 * 2  # two families x two [M/H] cells (FASTAR: no [alpha/Fe] axis)
    assert counts["sfh"] == 2

    result = snakemake(repo_root, tmp_path, "spectra", "--cores", "2", "--configfile", tiny)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with xr.open_dataset(tmp_path / "results/sfh/parametric.nc") as sfh:
        assert sfh.sizes["sfh"] == 25 and sfh.attrs["t_obs_gyr"] == 14.0
        convention = sfh.attrs["time_convention"]
    cube_path = tmp_path / "results/spectra/nonparametric/m-0.20.nc"
    with xr.open_dataset(cube_path) as cube:
        assert cube.flux.shape == (12, 4300)
        assert cube.attrs["time_convention"] == convention
        assert set(cube.split.values) <= {"train", "validation", "test"}
        assert float(cube.metallicity) == -0.2 and "alpha" not in cube.coords
        np.testing.assert_allclose(np.median(cube.flux.values, axis=1), 1.0, rtol=1e-5)
        first = cube.load()
    for name in ("sfhs", "spectra", "labels"):
        assert (tmp_path / f"results/spectra/parametric_{name}.png").stat().st_size > 10_000

    # the same seed gives identical cubes: rebuild the nonparametric family from scratch
    again = snakemake(repo_root, tmp_path, "spectra", "--cores", "2", "--configfile", tiny,
                      "--forcerun", "sfh", "--allowed-rules", "sfh", "spectra_cell", "spectra_plots", "spectra")
    assert again.returncode == 0, again.stderr[-3000:]
    with xr.open_dataset(cube_path) as cube:
        xr.testing.assert_identical(cube.load(), first)

    # a change outside sfh:/spectra:/ssp: re-runs nothing here; a split change re-runs only the cubes
    change = tmp_path / "change.yaml"
    change.write_text("spectra:\n  split: {train: 0.7, validation: 0.1, test: 0.2}\n")
    rerun = snakemake(repo_root, tmp_path, "spectra", "-n", "--cores", "1", "--configfile", tiny, str(change))
    assert rerun.returncode == 0, rerun.stderr
    assert scheduled_jobs(rerun.stdout) - {"spectra"} == {"spectra_cell", "spectra_plots"}


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.split() and line.split()[0] != "total"}


@pytest.mark.slow
def test_tiny_run_builds_the_encoder_and_latents(repo_root, tiny_workdir):
    """One family end to end (SSPs -> spectra -> encoder -> latents -> plots); encoder changes re-run only stage 3."""
    tmp_path = tiny_workdir  # shared with the other stage tests: each builds on the products before it
    import json

    tiny = str(repo_root / "tests/configs/tiny.yaml")
    plots = ["distributions", "correlation", "flux_correlation", "umap", "encoder_performance"]
    targets = ["results/encoder/parametric/metrics.json", "results/latents/parametric.nc",
               *[f"results/latents/parametric/{p}.png" for p in plots]]
    result = snakemake(repo_root, tmp_path, *targets, "--cores", "2", "--configfile", tiny)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / "results/encoder/parametric/metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["accelerator"] == "cpu"
    assert set(metrics["r2_test"]) == {f"t{p}" for p in range(10, 100, 10)} | {"metallicity"}
    assert metrics["train_spectra_per_s"] > 0
    assert (tmp_path / "results/encoder/parametric/checkpoints/last.ckpt").exists()
    with xr.open_dataset(tmp_path / "results/latents/parametric.nc") as lat:
        assert lat.latents.dims == ("sample", "latent") and lat.latents.shape == (50, 16)  # 25 SFHs x 2 cells
        assert lat.labels.shape == (50, 10) and set(lat.split.values) <= {"train", "validation", "test"}
        assert sorted(set(lat.metallicity.values.tolist())) == [-0.2, 0.0]
    for p in plots:
        assert (tmp_path / f"results/latents/parametric/{p}.png").stat().st_size > 10_000

    # changing only an encoder setting re-runs the encoder stage and nothing upstream
    change = tmp_path / "change.yaml"
    change.write_text("encoder:\n  learning_rate: 0.01\n")
    rerun = snakemake(repo_root, tmp_path, *targets, "-n", "--cores", "1", "--configfile", tiny, str(change))
    assert rerun.returncode == 0, rerun.stderr
    assert scheduled_jobs(rerun.stdout) == {"encoder_train", "latents_export", "latents_plots"}


@pytest.mark.slow
def test_tiny_run_builds_the_chem_graph(repo_root, tmp_path):
    """The whole CHEMPY graph on the tiny config: every listed product of results/chem/."""
    import json
    import os
    from pathlib import Path

    tiny = str(repo_root / "tests/configs/tiny.yaml")
    extra = []
    tng = Path(os.environ.get("GALAXY_SBI_SHARED", repo_root.parent / "shared")) / "data/chem/Mock_Data_TNG.npz"
    if tng.is_file():  # the TNG galaxy is a user file: data set 3 runs only where the shared folder exists
        (tmp_path / "tng.yaml").write_text(f"chem:\n  multistar:\n    tng_mock: {tng}\n")
        extra = [str(tmp_path / "tng.yaml")]
    dry = snakemake(repo_root, tmp_path, "chem", "-n", "--cores", "1", "--configfile", tiny, *extra)
    assert dry.returncode == 0, dry.stderr
    assert job_counts(dry.stdout)["chem_simulate"] == 2  # one job per chunk
    result = snakemake(repo_root, tmp_path, "chem", "--cores", "2", "--configfile", tiny, *extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "results/chem"
    for name in ("emulator_loss.png", "emulator_ape.png", "npe_sbc.png", "npe_tarp.png", "multistar_vs_nstars.png",
                 "coverage.png"):
        assert (out / name).stat().st_size > 10_000, name
    table = (out / "table.csv").read_text().splitlines()
    assert table[0].startswith("data set,combination,stars,alpha_IMF")
    assert "|" in (out / "table.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"emulator", "npe", "multistar", "coverage", "timing"} <= set(metrics)
    expected = {"simulator", "simulator_alt", "vice"} | ({"tng"} if extra else set())
    assert set(metrics["multistar"]) == expected
    assert metrics["timing"]["emcee_emulator"]["wall_s"] > 0
    with xr.open_dataset(out / "simulations.nc") as sims:
        assert sims.abundance.shape[1] == 8 and "[H/Fe]" not in sims.observable.values
        assert (sims.split.values == "train").sum() == 600


def test_tiny_run_builds_the_posterior_stage(repo_root, tiny_workdir):
    """One family end to end through the ANPE stage: NPE, evaluation (clean + S/N), ordering study, reconstruction."""
    tmp_path = tiny_workdir  # shared with the other stage tests: each builds on the products before it
    import json

    tiny = str(repo_root / "tests/configs/tiny.yaml")
    ev = tmp_path / "results/evaluation/parametric"
    targets = [f"results/evaluation/parametric/{f}" for f in
               ("metrics.json", "ordering.json", "reconstruction.json", "accuracy.png", "coverage.png", "sbc.png",
                "tarp.png", "accuracy_vs_snr.png", "reconstruction.png", "reconstruction_rms.png")]
    result = snakemake(repo_root, tmp_path, *targets, "--cores", "2", "--configfile", tiny)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((ev / "metrics.json").read_text())
    assert {"labels", "coverage", "tarp", "snr", "order_violation_fraction", "r2_t50", "parametrisation"} <= set(metrics)
    assert set(metrics["labels"]) == {f"t{p}" for p in range(10, 100, 10)} | {"metallicity"}
    assert {"r2", "bias", "scatter_nmad", "outlier_fraction"} <= set(metrics["labels"]["t50"])
    # linexp (the default for this family) cannot break the order; the ordering study trains naive beside it
    assert metrics["order_violation_fraction"] == 0.0 and metrics["parametrisation"] == "linexp"
    assert set(metrics["snr"]) == {"20"} and "joint" in metrics["coverage"]["empirical"]
    ordering = json.loads((ev / "ordering.json").read_text())
    assert {"naive", "linexp"} <= set(ordering) and ordering["naive"]["order_violation_fraction"] > 0
    rec = json.loads((ev / "reconstruction.json").read_text())
    assert rec["n_test"] == len(rec["rms_per_spectrum"]) > 0 and rec["rms_true_percentiles"]["median"] < 0.05
    assert (tmp_path / "results/npe/parametric/posterior.pt").exists() and not (tmp_path / "sbi-logs").exists()
    # the default trains on noisy copies too, and on the grid-valued theta spread over their cells
    training = json.loads((tmp_path / "results/npe/parametric/training.json").read_text())
    import xarray as xr
    with xr.open_dataset(tmp_path / "results/latents/parametric.nc") as lat:
        n_fit = int((lat["split"].values.astype(str) != "test").sum())
    assert training["noise"]["enabled"] and training["n_train"] == 2 * n_fit      # clean + one noisy copy
    assert set(training["dequantised"]) == {"metallicity", "t0", "log10_tau"} and "dequantised" in metrics["coverage"]
    for png in targets[3:]:
        assert (tmp_path / png).stat().st_size > 10_000

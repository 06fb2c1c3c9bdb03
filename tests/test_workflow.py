"""The workflow as a user runs it: lint, dry run, and a tiny real run in a scratch directory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import xarray as xr


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
def test_tiny_run_builds_the_ssp_stage(repo_root, tmp_path):
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
def test_tiny_run_builds_the_spectra_stage(repo_root, tmp_path):
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

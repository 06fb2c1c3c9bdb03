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

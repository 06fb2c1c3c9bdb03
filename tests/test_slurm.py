"""profiles/slurm for real: tiny runs of both graphs through sbatch on a single-node SLURM cluster.

CI starts the cluster (`.ci/slurm-local.sh start`, as root) and runs `make test-slurm`; elsewhere these tests
skip with a message. The scheduler's own record (`sacct`, with slurmdbd) is printed into the log and checked:
every job went through sbatch under its rule's name, the training rules carried their GPU request, the
chunked stages were separate jobs, and a failing job is reported as failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest

# a target set over both graphs: SSPs -> 2 SFHs -> 2 spectra cells -> the encoder (a GPU rule); the simulator's
# 2 chunks -> collection -> the emulator (a GPU rule)
TARGETS = ["results/latents/parametric.nc", "results/chem/emulator_metrics.json"]
GPU_RULES = {"encoder_train", "chem_emulator"}


def _cluster() -> str | None:
    """Why the tests cannot run here, or None."""
    if os.environ.get("GALAXY_SBI_SLURM") != "1":
        return "GALAXY_SBI_SLURM=1 not set (CI sets it after `.ci/slurm-local.sh start`)"
    for tool in ("sbatch", "sacct", "sinfo"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        return "no SLURM controller answers sinfo"
    return None


pytestmark = pytest.mark.skipif(_cluster() is not None, reason=str(_cluster()))


def snakemake(repo_root, workdir, targets, *options, extra_configs=(), timeout=1500):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(repo_root / "Snakefile"),
        "-d",
        str(workdir),
        "--profile",
        str(repo_root / "profiles/slurm"),
        *options,
        "--configfile",
        str(repo_root / "tests/configs/tiny.yaml"),
        *map(str, extra_configs),
        "--",
        *targets,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.split() and line.split()[0] != "total"}


def scheduler_record(since: str) -> list[dict]:
    """sacct's rows of the jobs submitted since `since` (allocations only), printed for the CI log."""
    result = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "--format=JobID,Comment%80,AllocTRES%60,State,ExitCode"],
        capture_output=True,
        text=True,
        check=True,
    )
    print("sacct -X --format=JobID,Comment,AllocTRES,State,ExitCode:\n" + result.stdout)
    rows = []
    for line in result.stdout.splitlines():
        if line.strip():
            job, comment, tres, state, code = line.split("|")
            rule = comment.removeprefix("rule_").split("_wildcards_")[0]
            rows.append({"job": job, "rule": rule, "comment": comment, "tres": tres, "state": state, "exit": code})
    return rows


def wait_for_record(since: str, n_jobs: int, timeout: float = 60.0) -> list[dict]:
    """slurmdbd records a job's end a moment after the controller: wait until every job is in."""
    deadline = time.time() + timeout
    while True:
        rows = scheduler_record(since)
        done = [r for r in rows if r["state"] not in ("PENDING", "RUNNING")]
        if len(done) >= n_jobs or time.time() > deadline:
            return rows
        time.sleep(3)


def test_tiny_run_goes_through_sbatch(repo_root, tmp_path):
    dry = snakemake(repo_root, tmp_path, TARGETS, "--dry-run")
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    expected = job_counts(dry.stdout)
    assert expected["spectra_cell"] == 2 and expected["chem_simulate"] == 2 and GPU_RULES <= set(expected)

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    run = snakemake(repo_root, tmp_path, TARGETS)
    print(run.stdout[-4000:] + run.stderr[-4000:])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = wait_for_record(since, sum(expected.values()))

    # every job of the DAG is one sbatch job of the scheduler, named by its rule, and it completed
    assert Counter(r["rule"] for r in rows) == Counter(expected), rows
    assert all(r["state"] == "COMPLETED" and r["exit"] == "0:0" for r in rows), rows
    # the training rules carried the profile's GPU request, the others did not
    for r in rows:
        assert ("gres/gpu=1" in r["tres"]) == (r["rule"] in GPU_RULES), r
    # chunked stages were separate jobs (one per cell, one per simulator chunk)
    cells = {r["comment"] for r in rows if r["rule"] == "spectra_cell"}
    chunks = {r["comment"] for r in rows if r["rule"] == "chem_simulate"}
    assert len(cells) == 2 and len(chunks) == 2, (cells, chunks)


def test_a_failing_job_fails_the_run(repo_root, tmp_path):
    """A job that fails on the cluster is reported failed by the scheduler and the run exits non-zero."""
    # the tiny SSP ages stop at 13 Gyr while the parametric SFHs start 14 Gyr before observation: with
    # age_edges 'error' the cube job refuses them (an InputError inside the job, not at DAG time)
    (tmp_path / "fail.yaml").write_text("spectra:\n  age_edges: error\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    run = snakemake(
        repo_root, tmp_path, ["results/spectra/parametric/m-0.20.nc"], extra_configs=[tmp_path / "fail.yaml"]
    )
    print(run.stdout[-4000:] + run.stderr[-4000:])
    assert run.returncode != 0
    assert "Error in rule spectra_cell" in run.stdout + run.stderr
    rows = wait_for_record(since, 4)
    failed = [r for r in rows if r["rule"] == "spectra_cell"]
    assert failed and all(r["state"] == "FAILED" for r in failed), rows
    assert all(r["state"] == "COMPLETED" for r in rows if r["rule"] != "spectra_cell"), rows

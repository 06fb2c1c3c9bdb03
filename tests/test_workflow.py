"""The workflow as a user runs it: lint, dry runs, one tiny real run of both graphs in a scratch directory, what
a config change re-runs, exact reruns, and the report."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xarray as xr

# every product of both graphs, the studies behind their own targets included
TINY_TARGETS = ["all", "ordering", "chem_studies", "observed"]
TARGET_RULES = set(TINY_TARGETS)


def snakemake(repo_root, workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo_root / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def tiny_configs(repo_root, workdir) -> list[str]:
    """The tiny config (both graphs; the TNG galaxy is the copy shipped with galaxy-sbi)."""
    return [str(repo_root / "tests/configs/tiny.yaml")]


def build_tiny(repo_root, workdir) -> subprocess.CompletedProcess:
    return snakemake(
        repo_root,
        workdir,
        "--cores",
        "2",
        "--configfile",
        *tiny_configs(repo_root, workdir),
        "--",
        *TINY_TARGETS,
        timeout=1800,
    )


def run_on_tiny(repo_root, workdir, target: str, *extra_configs: str) -> subprocess.CompletedProcess:
    """One more target in the built tiny workdir (the tiny config, then ``extra_configs`` over it)."""
    return snakemake(
        repo_root,
        workdir,
        "--nolock",
        "--cores",
        "2",
        "--configfile",
        *tiny_configs(repo_root, workdir),
        *extra_configs,
        "--",
        target,
    )


@pytest.fixture(scope="session")
def tiny_workdir(repo_root, tmp_path_factory):
    """Both graphs built once on the tiny config; the tests below read its products and dry-run against it
    (none of them rebuilds anything in it)."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    result = build_tiny(repo_root, workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    """Jobs per rule in the 'Job stats' table of a dry run (without the 'total' row); {} if nothing would run."""
    if "Job stats:" not in dry_run_stdout:
        return {}
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.split() and line.split()[0] != "total"}


def scheduled_jobs(dry_run_stdout: str) -> set[str]:
    return set(job_counts(dry_run_stdout))


# --- without a run ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lint_is_clean(repo_root, tmp_path):
    result = snakemake(repo_root, tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.slow
def test_dry_run_lists_the_stages(repo_root, tmp_path):
    result = snakemake(repo_root, tmp_path, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr
    for rule in ("ssp_library", "ssp_interpolate", "ssp_overview_plot", "encoder_train", "npe_train", "chem_npe"):
        assert rule in result.stdout
    # the studies are their own targets, not part of the default run
    assert "results/npe/parametric/posterior_naive.pt" not in result.stdout
    assert "npe_ordering_study" not in result.stdout and "chem_coverage" not in result.stdout


@pytest.mark.slow
def test_building_the_dag_imports_no_ml_library(repo_root, tmp_path):
    """`snakemake -n` stays a matter of seconds: the rule files import no torch, sbi, lightning or jax."""
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "snakemake",
            "-s",
            str(repo_root / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert imported, "no -X importtime output"
    assert not imported & {"torch", "sbi", "lightning", "jax", "fastar", "dense_basis"}, imported & {"torch", "sbi"}


@pytest.mark.slow
def test_slurm_profile_loads(repo_root, tmp_path):
    """The cluster profile parses, its executor plugin is installed and the training rules ask for a GPU."""
    result = snakemake(repo_root, tmp_path, "--profile", str(repo_root / "profiles/slurm"), "-n", "--printshellcmds")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ssp_library" in result.stdout
    blocks = result.stdout.split("\nrule ")
    for rule in ("encoder_train", "npe_train", "chem_emulator", "chem_npe"):
        block = next(b for b in blocks if b.startswith(rule + ":"))
        assert "gpu=1" in block, block


# --- the tiny run ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_run_builds_the_ssp_stage(repo_root, tiny_workdir):
    tmp_path = tiny_workdir
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
    rerun = snakemake(
        repo_root,
        tmp_path,
        "ssp",
        "-n",
        "--nolock",
        "--cores",
        "1",
        "--configfile",
        *tiny_configs(repo_root, tmp_path),
        str(change),
    )
    assert rerun.returncode == 0, rerun.stderr
    assert scheduled_jobs(rerun.stdout) - {"ssp"} == {"ssp_interpolate"}  # "ssp" is the target rule itself


@pytest.mark.slow
def test_tiny_run_builds_the_spectra_stage(repo_root, tmp_path):
    dry = snakemake(
        repo_root, tmp_path, "spectra", "-n", "--cores", "1", "--configfile", str(repo_root / "tests/configs/tiny.yaml")
    )
    assert dry.returncode == 0, dry.stderr
    counts = job_counts(dry.stdout)
    assert counts["spectra_cell"] == 2 * 2  # two families x two [M/H] cells (FASTAR: no [alpha/Fe] axis)
    assert counts["sfh"] == 2


@pytest.mark.slow
def test_tiny_run_spectra_products(tiny_workdir):
    tmp_path = tiny_workdir
    with xr.open_dataset(tmp_path / "results/sfh/parametric.nc") as sfh:
        assert sfh.sizes["sfh"] == 25 and sfh.attrs["t_obs_gyr"] == 14.0
        convention = sfh.attrs["time_convention"]
    with xr.open_dataset(tmp_path / "results/spectra/nonparametric/m-0.20.nc") as cube:
        assert cube.flux.shape == (12, 4300)
        assert cube.attrs["time_convention"] == convention
        assert set(cube.split.values) <= {"train", "validation", "test"}
        assert float(cube.metallicity) == -0.2 and "alpha" not in cube.coords
        np.testing.assert_allclose(np.median(cube.flux.values, axis=1), 1.0, rtol=1e-5)
    for name in ("sfhs", "spectra", "labels"):
        assert (tmp_path / f"results/spectra/parametric_{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_run_builds_the_encoder_and_latents(repo_root, tiny_workdir):
    """One family end to end (SSPs -> spectra -> encoder -> latents -> plots); encoder changes re-run only stage 3."""
    tmp_path = tiny_workdir
    plots = ["distributions", "correlation", "flux_correlation", "umap", "encoder_performance"]
    targets = [
        "results/encoder/parametric/metrics.json",
        "results/latents/parametric.nc",
        *[f"results/latents/parametric/{p}.png" for p in plots],
    ]
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
    rerun = snakemake(
        repo_root,
        tmp_path,
        *targets,
        "-n",
        "--nolock",
        "--cores",
        "1",
        "--configfile",
        *tiny_configs(repo_root, tmp_path),
        str(change),
    )
    assert rerun.returncode == 0, rerun.stderr
    assert scheduled_jobs(rerun.stdout) == {"encoder_train", "latents_export", "latents_plots"}


@pytest.mark.slow
def test_tiny_run_builds_the_chem_graph(repo_root, tiny_workdir, tmp_path):
    """The whole CHEMPY graph on the tiny config: every listed product of results/chem/."""
    dry = snakemake(
        repo_root, tmp_path, "chem", "-n", "--cores", "1", "--configfile", str(repo_root / "tests/configs/tiny.yaml")
    )
    assert dry.returncode == 0, dry.stderr
    assert job_counts(dry.stdout)["chem_simulate"] == 2  # one job per chunk
    out = tiny_workdir / "results/chem"
    for name in (
        "emulator_loss.png",
        "emulator_ape.png",
        "npe_sbc.png",
        "npe_tarp.png",
        "multistar_vs_nstars.png",
        "coverage.png",
        "vice_vs_simulator.png",
    ):
        assert (out / name).stat().st_size > 10_000, name
    table = (out / "table.csv").read_text().splitlines()
    assert table[0].startswith("data set,combination,stars,alpha_IMF")
    rows = list(__import__("csv").reader(table))
    assert all(len(row) == 13 for row in rows)  # data-set names with commas are quoted
    study = {row[0]: row[9] for row in rows[1:]}  # the study's published alpha_IMF, in its own column
    assert study["TNG galaxy"] == "-2.27" and study["VICE one-zone"] == ""
    assert "|" in (out / "table.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"emulator", "npe", "multistar", "timing"} <= set(metrics)
    expected = {"simulator", "simulator_alt", "tng", "vice"}  # the TNG galaxy ships with galaxy-sbi
    assert set(metrics["multistar"]) == expected
    timing = json.loads((out / "timing.json").read_text())  # emcee against the NPE on the same stars
    assert [r["n_stars"] for r in timing["rows"]] == [1, 2] and all(r["wall_s"] > 0 for r in timing["rows"])
    assert not timing["rows"][0]["converged"] and "exponent" in timing["emcee_scaling"]  # the tiny cap: 40 steps
    assert (out / "timing.png").stat().st_size > 10_000 and "| 2 |" in (out / "timing.md").read_text()
    vice = json.loads((out / "vice_vs_simulator.json").read_text())  # the other code against ours, same parameters
    assert vice["n_stars"] >= 1 and len(vice["median_difference_dex"]) == 8
    coverage = json.loads((out / "coverage_metrics.json").read_text())
    assert set(coverage["methods"]) >= {"gaussian", "grid"}
    per_parameter = coverage["methods"]["grid"]["5"]["parameters"]["log10_N_Ia"]  # the N_Ia target's numbers
    assert {"mean_abs_pull", "coverage_68", "band_95", "within_band_95"} <= set(per_parameter)
    with xr.open_dataset(out / "simulations.nc") as sims:
        assert sims.abundance.shape[1] == 8 and "[H/Fe]" not in sims.observable.values
        assert (sims.split.values == "train").sum() == 600


@pytest.mark.slow
def test_tiny_run_builds_the_posterior_stage(repo_root, tiny_workdir):
    """One family end to end through the ANPE stage: NPE, evaluation (clean + S/N), ordering study, reconstruction."""
    tmp_path = tiny_workdir
    ev = tmp_path / "results/evaluation/parametric"
    targets = [
        f"results/evaluation/parametric/{f}"
        for f in (
            "metrics.json",
            "ordering.json",
            "reconstruction.json",
            "accuracy.png",
            "coverage.png",
            "sbc.png",
            "tarp.png",
            "accuracy_vs_snr.png",
            "reconstruction.png",
            "reconstruction_rms.png",
        )
    ]
    metrics = json.loads((ev / "metrics.json").read_text())
    assert {"labels", "coverage", "tarp", "snr", "order_violation_fraction", "r2_t50", "parametrisation"} <= set(
        metrics
    )
    assert set(metrics["labels"]) == {f"t{p}" for p in range(10, 100, 10)} | {"metallicity"}
    assert {"r2", "bias", "scatter_nmad", "outlier_fraction"} <= set(metrics["labels"]["t50"])
    # linexp (the default for this family) cannot break the order; the ordering study trains naive beside it
    assert metrics["order_violation_fraction"] == 0.0 and metrics["parametrisation"] == "linexp"
    assert set(metrics["snr"]) == {"20"} and "joint" in metrics["coverage"]["empirical"]
    ordering = json.loads((ev / "ordering.json").read_text())
    assert {"naive", "linexp"} <= set(ordering) and ordering["naive"]["order_violation_fraction"] > 0
    assert ordering["configured"] == "linexp"
    rec = json.loads((ev / "reconstruction.json").read_text())
    assert rec["n_test"] == len(rec["rms_per_spectrum"]) > 0 and rec["rms_true_percentiles"]["median"] < 0.05
    assert (tmp_path / "results/npe/parametric/posterior_linexp.pt").exists() and not (tmp_path / "sbi-logs").exists()
    assert (ev / "posterior_summary.nc").is_file()
    # the default trains on noisy copies too, on continuous (t0, tau, [M/H]): nothing is dequantised
    training = json.loads((tmp_path / "results/npe/parametric/training_linexp.json").read_text())
    with xr.open_dataset(tmp_path / "results/latents/parametric.nc") as lat:
        n_fit = int((lat["split"].values.astype(str) != "test").sum())
        assert len(np.unique(lat["labels"].sel(parameter="metallicity").values)) == lat.sizes["sample"]
    assert training["noise"]["enabled"] and training["n_train"] == 2 * n_fit  # clean + one noisy copy
    # told each spectrum's S/N: the saved posterior builds that input itself, and the evaluation says so
    assert training["conditioning"] == ["log10_snr", "sigma_100kms", "blue_mask"]
    assert "observation-like" in metrics["npe_noise"] and "instrument" in metrics["snr_definition"]
    assert training["dequantised"] == {} and "dequantised" not in metrics["coverage"]
    # the headline is the off-grid set; the fixed degradations beside it
    off = metrics["off_grid"]
    assert off["n_test"] == 40 and metrics["headline"]["test_set"] == "off_grid"
    assert 0 <= off["prior"]["t90_within_last_30_myr_fraction"] <= 1 and "U(" in off["prior"]["metallicity_prior"]
    assert (
        metrics["r2_t50"] == off["labels"]["t50"]["r2"] and metrics["r2_t50_on_grid"] == metrics["labels"]["t50"]["r2"]
    )
    names = [d["name"] for d in metrics["degraded"]["settings"]]
    assert names == ["S/N 20, σ 250", "S/N 20, σ 250, < 3800 Å masked"]
    assert (
        "linear-exponential" in metrics["assumptions"]["posterior"]
        and "no [alpha/Fe]" in metrics["assumptions"]["alpha_axis"]
    )
    for png in ("accuracy_off_grid.png", "coverage_off_grid.png", "degraded.png"):
        assert (ev / png).stat().st_size > 10_000
    assert json.loads((tmp_path / "results/npe/nonparametric/training_naive.json").read_text())["noise"]["enabled"]
    for png in targets[3:]:
        assert (tmp_path / png).stat().st_size > 10_000
    # every rule wrote its benchmark file
    assert len(list((tmp_path / "logs/benchmarks").rglob("*.tsv"))) >= 40


# --- what a config change re-runs ------------------------------------------------------------------------------
# (section, override, what must re-run): the override changes one key; "must re-run" is what `--forcerun` of
# those rules or files schedules (they and everything downstream of them), [] for nothing.
RERUN_CASES = [
    ("ssp", "ssp: {fastar: {imf: salpeter}}", ["ssp_library"]),
    ("ssp", "ssp: {plot: {ages_gyr: [0.1, 13.0]}}", ["ssp_overview_plot"]),
    ("ssp", "ssp: {milespy: {repository: /elsewhere/MILES.hdf5}}", []),  # another source's setting
    (
        "sfh",
        "sfh: {nonparametric: {tx_alpha: 4.0}}",  # the prior of the training and of the off-grid SFHs
        ["results/sfh/nonparametric.nc", "results/spectra/nonparametric/off_grid_test.nc"],
    ),
    ("sfh", "sfh: {parametric: {thin: 24}}", ["results/sfh/parametric.nc"]),  # not the other family
    ("spectra", "spectra: {split: {train: 0.7, validation: 0.1, test: 0.2}}", ["spectra_cell"]),
    ("spectra", "spectra: {complevel: 0}", []),  # storage only
    ("encoder", "encoder: {learning_rate: 0.01}", ["encoder_train"]),
    ("encoder", "encoder: {progress_refresh: 5, accelerator: cpu}", []),  # display and device
    ("latents", "latents: {umap: {n_neighbors: 4}}", ["latents_plots"]),
    ("latents", "latents: {batch_size: 64}", []),  # pure inference
    ("npe", "npe: {learning_rate: 0.002}", ["npe_train", "observed_posterior"]),  # the matched NPEs too
    (
        "npe",
        "npe: {noise: {snr_range: [20.0, 200.0]}}",  # the noise-aware families' (both, by default)
        [
            "results/npe/parametric/posterior_linexp.pt",
            "results/npe/parametric/posterior_naive.pt",
            "results/evaluation/parametric/metrics.json",
            "results/npe/nonparametric/posterior_naive.pt",
            "results/npe/nonparametric/posterior_ordered.pt",
            "results/evaluation/nonparametric/metrics.json",
        ],
    ),
    ("evaluation", "evaluation: {n_samples: 40}", ["npe_evaluate", "npe_ordering_study"]),
    ("evaluation", "evaluation: {reconstruction: {n_plot: 1}}", ["reconstruction"]),
    ("evaluation", "evaluation: {encode_batch_size: 64}", []),  # pure inference
    (
        "chem.priors",
        "chem: {priors: {birth_time_gyr: [1.5, 13.8]}}",
        [
            "chem_simulate",
            "chem_npe",
            "results/chem/datasets/simulator.npz",
            "results/chem/datasets/simulator_alt.npz",
            "results/chem/datasets/vice.npz",
            "chem_systematics",
            "chem_multistar",
            "chem_coverage",
            "chem_timing",
            "chem_emulator",
        ],
    ),
    (
        "chem.yields",
        "chem: {yields: {source: vice, preset: tng_like}}",
        [
            "chem_simulate",
            "results/chem/npe_global.pt",
            "results/chem/datasets/simulator.npz",
            "chem_systematics",
            "chem_coverage",
        ],
    ),
    (
        "chem.alternative_yields",
        "chem: {alternative_yields: {source: vice, preset: tng_like}}",
        ["results/chem/datasets/simulator_alt.npz"],
    ),
    ("chem.simulate", "chem: {simulate: {n_validation: 40}}", ["chem_simulate"]),
    ("chem.emulator", "chem: {emulator: {epochs: 3}}", ["chem_emulator"]),
    ("chem.npe", "chem: {npe: {joint: {hidden_features: 9}}}", ["results/chem/npe_joint.pt"]),
    ("chem.npe", "chem: {npe: {n_evaluate: 10}}", ["chem_npe_evaluate"]),  # not the NPEs it evaluates
    ("chem.multistar", "chem: {multistar: {star_counts: [1, 30]}}", ["chem_multistar"]),  # not the systematics
    ("chem.multistar", "chem: {multistar: {vice: {n_stars: 8}}}", ["results/chem/datasets/vice.npz"]),
    ("chem.systematics", "chem: {systematics: {n_stars: 12}}", ["chem_systematics"]),
    ("chem.coverage", "chem: {coverage: {star_counts: [4]}}", ["chem_coverage"]),
    ("chem.timing", "chem: {timing: {emcee: {max_steps: 22}}}", ["chem_timing"]),
    ("baselines", "baselines: {ppxf: {n_bootstrap: 3}}", ["baselines_fit"]),
    ("baselines", "baselines: {sizes: {full: 3}}", []),  # the full comparison is not part of the default run
    ("observed", "observed: {ppxf: {n_bootstrap: 3}}", ["observed_ppxf"]),  # not the preparation's sigma fit
    ("observed", "observed: {model: {n_samples: 50}}", ["observed_posterior"]),
    # one galaxy's override re-runs that galaxy only
    ("observed", "observed: {galaxies: {NGC3073: {sigma_kms: 50.0}}}", ["results/observed/NGC3073/prepared.nc"]),
]


def _dry_run(repo_root, workdir, *extra):
    result = snakemake(
        repo_root,
        workdir,
        "-n",
        "--nolock",
        "--cores",
        "1",
        "--configfile",
        *tiny_configs(repo_root, workdir),
        *extra,
        "--",
        *TINY_TARGETS,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {k: v for k, v in job_counts(result.stdout).items() if k not in TARGET_RULES}


@pytest.mark.slow
def test_a_config_change_reruns_exactly_the_stages_that_read_it(repo_root, tiny_workdir):
    """For every config section: one key a stage reads re-runs that stage and what is downstream of it, one it
    does not read re-runs nothing of it (dry runs against the built tiny workdir, two at a time)."""
    assert _dry_run(repo_root, tiny_workdir) == {}, "the built tiny run is not up to date"
    changes = tiny_workdir / "changes"
    changes.mkdir(exist_ok=True)

    def check(index_case):
        i, (section, override, forced) = index_case
        path = changes / f"change_{i}.yaml"
        path.write_text(override + "\n")
        got = _dry_run(repo_root, tiny_workdir, str(path))
        expected = _dry_run(repo_root, tiny_workdir, "--forcerun", *forced) if forced else {}
        return section, override, got, expected

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, enumerate(RERUN_CASES)))
    wrong = [
        f"{section}: `{override}` re-runs {got}, expected {expected}"
        for section, override, got, expected in results
        if got != expected
    ]
    assert not wrong, "\n".join(wrong)


# --- exact reruns ----------------------------------------------------------------------------------------------
# Runs of the same config and seed on the same machine: SFHs and cubes byte for byte, the metrics to METRIC_RTOL
# (torch's CPU kernels are deterministic for a fixed thread count; the tolerance covers a float's last digits).
METRIC_RTOL = 1e-6


def _numbers(obj, prefix=""):
    """Every number in a JSON document, keyed by its path (timings left out: they are not results)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not any(word in k for word in ("time", "_s", "seconds", "per_s")):
                out.update(_numbers(v, f"{prefix}.{k}"))
        return out
    if isinstance(obj, list):
        return {k: v for i, x in enumerate(obj) for k, v in _numbers(x, f"{prefix}[{i}]").items()}
    return {prefix: float(obj)} if isinstance(obj, (int, float)) and not isinstance(obj, bool) else {}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_products(repo_root, tiny_workdir, tmp_path):
    again = build_tiny(repo_root, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    products = sorted(
        p.relative_to(tiny_workdir)
        for p in (tiny_workdir / "results").rglob("*.nc")
        if p.parts[-2] in ("sfh",) or "spectra" in p.parts
    )
    assert len(products) >= 2 + 4
    different = [str(p) for p in products if not filecmp.cmp(tiny_workdir / p, tmp_path / p, shallow=False)]
    assert not different, f"not byte-identical: {different}"
    for metrics in (
        "evaluation/parametric/metrics.json",
        "evaluation/nonparametric/metrics.json",
        "encoder/parametric/metrics.json",
        "chem/metrics.json",
        "chem/emulator_metrics.json",
    ):
        a = _numbers(json.loads((tiny_workdir / "results" / metrics).read_text()))
        b = _numbers(json.loads((tmp_path / "results" / metrics).read_text()))
        assert a.keys() == b.keys(), metrics
        off = {k: (a[k], b[k]) for k in a if not np.isclose(a[k], b[k], rtol=METRIC_RTOL, atol=1e-12, equal_nan=True)}
        assert not off, f"{metrics}: {off}"


# --- the report ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_report_holds_every_plot_and_the_headline_numbers(repo_root, tiny_workdir):
    report = tiny_workdir / "report.html"
    result = snakemake(
        repo_root,
        tiny_workdir,
        "--nolock",
        "--configfile",
        *tiny_configs(repo_root, tiny_workdir),
        "--report",
        str(report),
        "--",
        *TINY_TARGETS,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "ERROR/" not in log and "Undefined substitution" not in log, log[-3000:]  # every caption renders
    html = report.read_text()
    pngs = sorted(str(p.relative_to(tiny_workdir)) for p in (tiny_workdir / "results").rglob("*.png"))
    assert len(pngs) >= 30
    missing = [p for p in pngs if p not in html]
    assert not missing, f"plots not in the report: {missing}"
    # the front page carries this run's numbers: the parametric t50 R^2 and the chemistry table
    t50 = json.loads((tiny_workdir / "results/evaluation/parametric/metrics.json").read_text())["labels"]["t50"]["r2"]
    assert "parametric R\\u00b2" in html and f"{t50:.3f}" in html
    assert "training yields" in html and "problematic" not in html


@pytest.mark.slow
def test_tiny_run_compares_anpe_with_emcee_and_ppxf(tiny_workdir):
    """The quick baselines of the default run: the same test spectra through ANPE, emcee and pPXF."""
    out = tiny_workdir / "results/baselines/quick"
    rows = list(__import__("csv").DictReader((out / "table.csv").open()))
    methods = {(r["family"], r["method"]) for r in rows}
    assert methods == {("parametric", m) for m in ("anpe", "emcee", "ppxf")} | {
        ("nonparametric", m) for m in ("anpe", "ppxf")
    }  # emcee's model is the linear-exponential law: parametric only
    assert all(float(r["seconds_median"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert {s["method"] for s in summary["speedups"]} == {"emcee", "ppxf"}
    # tiny: S/N 20 at sigma 150 km/s on top of the instrument; pPXF's templates at the instrument measure that sigma
    assert {float(r["sigma_kms"]) for r in rows} == {150.0}
    for fitted in summary["ppxf_sigma_fitted_kms_median"].values():
        assert 100 < fitted < 200
    for png in ("time_vs_error.png", "example_posteriors.png"):
        assert (out / png).stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_run_infers_the_observed_galaxies(tiny_workdir):
    """The two SDSS galaxies shipped with ppxf: prepared, fitted by pPXF, inferred by the matched posterior."""
    for galaxy in ("NGC3522", "NGC3073"):
        out = tiny_workdir / "results/observed" / galaxy
        summary = json.loads((out / "summary.json").read_text())
        assert summary["preparation"]["redshift"] == pytest.approx(
            {"NGC3522": 0.00402, "NGC3073": 0.00376}[galaxy], abs=2e-5
        )
        # NGC3073's SDSS classification is a star (VDISP 0): its sigma comes from pPXF
        assert (
            summary["preparation"]["sigma_source"]
            == {
                "NGC3522": "file (SDSS VDISP)",
                "NGC3073": "pPXF on the prepared spectrum",
            }[galaxy]
        )
        t50 = summary["posterior"]["t50"]
        assert t50["low_95"] <= t50["median"] <= t50["high_95"]
        assert isinstance(summary["out_of_distribution"]["out_of_distribution"], bool)
        chi2 = summary["reconstruction_chi2"]
        n_test = summary["calibration_on_degraded_test"]["n_test"]
        assert chi2["galaxy_chi2_per_pixel"] > 0 and chi2["n_synthetic"] == min(4, n_test)  # tiny: n_chi2_reference 4
        assert 0 <= chi2["false_alarm_rate_on_test_spectra"] <= 1
        rows = list(__import__("csv").DictReader((out / "posterior_table.csv").open()))
        assert [r["label"] for r in rows][-1] == "metallicity" and "ppxf" in rows[0]
        for png in ("corner.png", "mass_assembly.png", "reconstruction.png"):
            assert (out / png).stat().st_size > 10_000


@pytest.mark.slow
def test_a_bad_observed_file_stops_with_one_message(repo_root, tiny_workdir, tmp_path):
    """A broken spectrum ends its preparation job with one line naming the file, before any model is loaded."""
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"observed:\n  galaxies:\n    broken: {{file: '{bad}'}}\n")
    result = snakemake(
        repo_root,
        tiny_workdir,
        "--nolock",
        "--cores",
        "1",
        "--configfile",
        *tiny_configs(repo_root, tiny_workdir),
        str(cfg),
        "--",
        "results/observed/broken/prepared.nc",
    )
    assert result.returncode != 0
    log_file = tiny_workdir / "logs/observed_prepare/broken.log"
    message = log_file.read_text()
    assert f"{bad}: cannot read as FITS" in message and "Traceback" not in message
    assert not (tiny_workdir / "results/observed/broken").exists() or not any(
        (tiny_workdir / "results/observed/broken").iterdir()
    )


@pytest.mark.slow
def test_the_ssp_systematic_of_a_library_against_itself_is_zero(repo_root, tiny_workdir, tmp_path):
    """The tiny run's own FASTAR SSPs written as MILES-named files: ssp_systematic finds no residual and no bias.

    (Last in this file: its plots are not in the report the test above builds.)"""
    import xarray as xr
    from astropy.io import fits

    from galaxy_sbi.spectra.ssp import miles_fits_name

    folder = tmp_path / "miles"
    folder.mkdir()
    with xr.open_dataset(tiny_workdir / "results/ssp/ssp_library.nc") as lib:
        wave = lib.wavelength.values
        for met in lib.metallicity.values:
            for age in lib.age.values:
                header = fits.Header()
                header["CRVAL1"], header["CDELT1"], header["CRPIX1"] = float(wave[0]), float(wave[1] - wave[0]), 1.0
                flux = lib.flux.sel(metallicity=met, age=age).values
                fits.PrimaryHDU(flux, header=header).writeto(folder / miles_fits_name(float(age), float(met)))
    cfg = tmp_path / "systematic.yaml"
    cfg.write_text(f"ssp_systematic:\n  miles: {{directory: '{folder}'}}\n  n_samples: 20\n")
    result = run_on_tiny(repo_root, tiny_workdir, "ssp_systematic", str(cfg))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    comparison = json.loads((tiny_workdir / "results/ssp/fastar_vs_miles.json").read_text())
    assert comparison["rms_residual_percent_max"] < 0.05  # FASTAR re-synthesised at the same ages and IMF
    assert abs(comparison["luminosity_ratio_median"] - 1) < 1e-3
    cross = json.loads((tiny_workdir / "results/evaluation/nonparametric/cross_library.json").read_text())
    assert cross["metallicity_cells"] == [-0.2, 0.0] and cross["n_test"] > 0
    assert "broadened to the instrument's 2.76 A FWHM" in cross["definition"]  # the NPE is told sigma (the default)
    for setting in cross["results"].values():
        for label in setting["systematic"].values():
            assert abs(label["bias_miles_minus_fastar"]) < 1e-3
    for png in ("results/ssp/fastar_vs_miles.png", "results/evaluation/nonparametric/cross_library.png"):
        assert (tiny_workdir / png).stat().st_size > 10_000


@pytest.mark.slow
def test_matched_and_conditioned_posteriors_at_the_fixed_degradations(repo_root, tiny_workdir):
    """The conditioning target on the tiny run: every fixed setting through the three posteriors."""
    result = run_on_tiny(repo_root, tiny_workdir, "conditioning")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = json.loads((tiny_workdir / "results/evaluation/nonparametric/conditioning.json").read_text())
    with xr.open_dataset(tiny_workdir / "results/latents/nonparametric.nc") as lat:
        n_fit = int((lat["split"].values.astype(str) != "test").sum())
    assert out["matched"]["n_train_each"] == n_fit and out["conditioned"]["n_train"] == n_fit  # tiny: one copy
    assert [r["name"] for r in out["settings"]] == ["S/N 20, σ 250", "S/N 20, σ 250, < 3800 Å masked"]
    for row in out["settings"]:
        for kind in ("amortised", "matched", "conditioned"):
            assert 0 <= row[kind]["coverage_max_abs_deviation_all"] <= 1 and "t50" in row[kind]["r2"]
    assert out["matched"]["compute_s"] > 0 and out["conditioned"]["compute_s"] > 0
    assert (tiny_workdir / "results/evaluation/nonparametric/conditioning.png").stat().st_size > 10_000

"""The config is validated before any job: every mistake gives one message naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from galaxy_sbi.config import validate_config
from galaxy_sbi.errors import ConfigError


@pytest.fixture(scope="module")
def default_config(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


def test_default_config_is_valid(default_config):
    validate_config(default_config)


def test_paper_config_is_valid(default_config, repo_root):
    paper = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())
    merged = _deep_update(copy.deepcopy(default_config), paper)
    validate_config(merged)
    assert merged["ssp"]["source"] == "milespy"


def _deep_update(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _set(config, dotted, value):
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return config


_DELETE = object()

# (dotted key, bad value, text the message must contain)
BAD_CONFIGS = [
    ("ssp.sourcee", "fastar", "unknown key 'ssp.sourcee'"),
    ("extra_section", {"a": 1}, "unknown key 'extra_section'"),
    ("ssp.source", "bc03", "ssp.source"),
    ("seed", "forty-two", "seed"),
    ("seed", -1, "seed"),
    ("ssp.ages_gyr", [0.1, 20.0], "ssp.ages_gyr[1]"),
    ("ssp.metallicities", [-3.5, 0.0], "ssp.metallicities[0]"),
    ("ssp.interpolate.alphas", [0.0, 0.6], "ssp.interpolate.alphas[1]"),
    ("ssp.fastar.out_of_range", "ignore", "ssp.fastar.out_of_range"),
    ("ssp.alpha_models", [0.0, 0.2], "ssp.alpha_models"),
    ("ssp.milespy.repository", 42, "ssp.milespy.repository"),
    ("ssp.ages_gyr", [1.0, 0.5], "ssp.ages_gyr must be in increasing order"),
    ("ssp.interpolate.metallicities", [0.0, 0.5], "outside the native grid"),
    ("ssp.plot", _DELETE, "'plot' is a required property"),
    ("sfh", _DELETE, "'sfh' is a required property"),
    ("sfh.families", ["parametric", "bursty"], "sfh.families[1]"),
    ("sfh.stellar_mass", 0, "sfh.stellar_mass"),
    ("sfh.percentiles", [10, 100], "sfh.percentiles[1]"),
    ("sfh.parametric.thin", 0, "sfh.parametric.thin"),
    ("sfh.parametric.t0_gyr", {"start": 0.0, "stop": 14.0, "step": 0.05}, "before the observation"),
    ("sfh.parametric.time_gyr", {"start": 0.0, "stop": 14.0}, "'step' is a required property"),
    ("sfh.parametric.log10_tau_gyr", {"start": 0.7, "stop": -0.5, "step": 0.012}, "stop (-0.5) < start (0.7)"),
    ("sfh.nonparametric.n_per_cell", 0, "sfh.nonparametric.n_per_cell"),
    ("sfh.nonparametric.n_per_cel", 10, "unknown key 'sfh.nonparametric.n_per_cel'"),
    ("sfh.nonparametric.log_ssfr_range", [-7.5, -12.0], "log_ssfr_range must be [low, high]"),
    ("spectra.split", {"train": 0.9, "validation": 0.1, "test": 0.1}, "must sum to 1"),
    ("spectra.split.test", 0.0, "spectra.split.test"),
    ("spectra.normalisation", "mean", "spectra.normalisation"),
    ("spectra.complevel", 10, "spectra.complevel"),
    ("spectra.age_edges", "extrapolate", "spectra.age_edges"),
    ("encoder", _DELETE, "'encoder' is a required property"),
    ("encoder.filters", [16, 32], "encoder.filters"),
    ("encoder.filters", [16, 32, 63], "encoder.filters[-1] must be even"),
    ("encoder.learning_rate", 0, "encoder.learning_rate"),
    ("encoder.loss", "l1", "encoder.loss"),
    ("encoder.accelerator", "tpu", "encoder.accelerator"),
    ("encoder.augmentation.snr_range", [100.0, 10.0], "encoder.augmentation.snr_range must be [low, high]"),
    ("encoder.augmentation.snr_range", [0.0, 10.0], "encoder.augmentation.snr_range[0]"),
    ("encoder.augmentation.enable", True, "unknown key 'encoder.augmentation.enable'"),
    ("latents.umap.n_neighbors", 1, "latents.umap.n_neighbors"),
    ("latents.umap_samples", 10, "unknown key 'latents.umap_samples'"),
    # the chem: section (the CHEMPY graph)
    ("chem.simulate.n_trian", 10, "unknown key 'chem.simulate.n_trian'"),
    ("chem.yields.source", "tng_yields", "chem.yields.source"),
    ("chem.priors.mean", [-2.3, -2.89], "chem.priors.mean"),
    ("chem.npe.joint.model", "gan", "chem.npe.joint.model"),
    ("chem.multistar.star_counts", [1, 5000], "chem.multistar.star_counts"),
    ("chem.priors.birth_time_gyr", [13.0, 2.0], "chem.priors.birth_time_gyr"),
    ("chem.yields", {"source": "chempy", "preset": "tng_like", "directory": None}, "chem.yields.directory"),
    ("chem.yields", {"source": "vice"}, "chem.yields.preset"),
    # the npe: and evaluation: sections (ANPE posteriors)
    ("npe.model", "gan", "npe.model"),
    ("npe.parametrisation", "ratios", "npe.parametrisation"),
    ("npe.hiden_features", 8, "unknown key 'npe.hiden_features'"),
    ("evaluation.snr", [0.0], "evaluation.snr"),
    ("evaluation.reconstruction.ends", "pchip", "evaluation.reconstruction.ends"),
    ("observed.model.n_chi2_draws", 5000, "observed.model.n_chi2_draws"),
]


@pytest.mark.parametrize("key,value,expected", BAD_CONFIGS, ids=[b[0] + "=" + repr(b[1])[:20] for b in BAD_CONFIGS])
def test_bad_config_is_refused_with_the_key_named(default_config, key, value, expected):
    config = _set(copy.deepcopy(default_config), key, value)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message  # one line


@pytest.mark.parametrize(
    "override,expected",
    [
        ({"ssp": {"colour": "red"}}, "unknown key 'ssp.colour'"),
        ({"ssp": {"source": 3}}, "ssp.source"),
        ({"seed": 1.5}, "seed: 1.5 is not of type 'integer'"),
        ({"ssp": {"interpolate": {"alphas": [-0.2]}}}, "ssp.interpolate.alphas[0]"),
        ({"ssp": {"ages_gyr": []}}, "ssp.ages_gyr"),
    ],
)
@pytest.mark.slow
def test_snakemake_stops_before_any_job(tmp_path, repo_root, override, expected):
    """`snakemake -n` with a bad --configfile exits non-zero with the message, and schedules nothing."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(repo_root / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(bad),
            "-n",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "invalid config" in output and expected in output
    assert "Job stats" not in output


@pytest.mark.parametrize(
    "value,ok",
    [
        ("naive", True),
        ({"parametric": "log_gaps", "nonparametric": "naive"}, True),
        ({"parametric": "log_gaps"}, True),
        ({"parametrik": "naive"}, False),
        ({"parametric": "sorted"}, False),
        ("sorted", False),
    ],
)
def test_npe_parametrisation_is_one_kind_or_one_per_family(default_config, value, ok):
    from conftest import load_rule_glue

    cfg = copy.deepcopy(default_config)
    cfg["npe"]["parametrisation"] = value
    if not ok:
        with pytest.raises(ConfigError, match="npe.parametrisation"):
            validate_config(cfg)
        return
    validate_config(cfg)
    expected = value if isinstance(value, str) else value.get("nonparametric", "log_gaps")
    assert load_rule_glue(cfg)["family_parametrisation"](value, "nonparametric") == expected

"""Configuration validation: one clear message naming the offending key, before any job runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key_path(path) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into '<key>: <what is wrong>'."""
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = "" if key == "<top level>" else key + "."
        return f"unknown key '{where}{unknown[0]}' (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "oneOf":
        sub = [_describe(e) for e in error.context or []]
        return f"{key}: {error.instance!r} matches none of the allowed forms ({'; '.join(sub)})"
    return f"{key}: {error.message}"


def validate_config(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Check a config against the schema and the cross-key rules; raise ConfigError naming the key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(f"invalid config: {_describe(errors[0])}")
    _check_cross_keys(config)


def _require_sorted(values, key: str) -> None:
    if list(values) != sorted(values):
        raise ConfigError(f"invalid config: {key} must be in increasing order, got {list(values)}")


def _check_cross_keys(config: Mapping[str, Any]) -> None:
    """Rules a JSON schema cannot express: orderings and grids that must lie inside other grids."""
    ssp = config["ssp"]
    _require_sorted(ssp["ages_gyr"], "ssp.ages_gyr")
    _require_sorted(ssp["metallicities"], "ssp.metallicities")
    _require_sorted(ssp["interpolate"]["metallicities"], "ssp.interpolate.metallicities")
    _require_sorted(ssp["interpolate"]["alphas"], "ssp.interpolate.alphas")
    lo, hi = min(ssp["metallicities"]), max(ssp["metallicities"])
    outside = [m for m in ssp["interpolate"]["metallicities"] if not lo - 1e-9 <= m <= hi + 1e-9]
    if outside:
        raise ConfigError(
            f"invalid config: ssp.interpolate.metallicities {outside} lie outside the native grid "
            f"ssp.metallicities [{lo}, {hi}]; interpolation never extrapolates"
        )
    _check_sfh_spectra(config)
    if "chem" in config:
        _check_chem(config["chem"])
    _check_encoder(config)
    model = config.get("observed", {}).get("model")
    if model and model["n_chi2_draws"] > min(model["n_samples"], model["n_calibration_samples"]):
        raise ConfigError(
            f"invalid config: observed.model.n_chi2_draws ({model['n_chi2_draws']}) must not exceed "
            "observed.model.n_samples or n_calibration_samples (the draws come from them)"
        )


def _check_sfh_spectra(config: Mapping[str, Any]) -> None:
    """Cross-key rules of the sfh: and spectra: sections."""
    par = config["sfh"]["parametric"]
    for key in ("time_gyr", "t0_gyr", "log10_tau_gyr"):
        if par[key]["stop"] < par[key]["start"]:
            raise ConfigError(
                f"invalid config: sfh.parametric.{key}: stop ({par[key]['stop']}) < start ({par[key]['start']})"
            )
    time, t0 = par["time_gyr"], par["t0_gyr"]
    if t0["start"] < time["start"] or t0["stop"] >= time["stop"]:
        raise ConfigError(
            f"invalid config: sfh.parametric.t0_gyr [{t0['start']}, {t0['stop']}] must lie inside the time grid and "
            f"before the observation at sfh.parametric.time_gyr.stop = {time['stop']}"
        )
    lo, hi = config["sfh"]["nonparametric"]["log_ssfr_range"]
    if lo >= hi:
        raise ConfigError(f"invalid config: sfh.nonparametric.log_ssfr_range must be [low, high], got {[lo, hi]}")
    split = config["spectra"]["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"invalid config: spectra.split fractions must sum to 1, got {total:g} ({split})")


def _check_encoder(config: Mapping[str, Any]) -> None:
    """Cross-key rules of the encoder: section."""
    enc = config["encoder"]
    if enc["filters"][-1] % 2:
        raise ConfigError(
            f"invalid config: encoder.filters[-1] must be even (its channels are split in half into features and "
            f"attention weights), got {enc['filters'][-1]}"
        )
    aug = enc["augmentation"]
    for key, (lo, hi) in (
        ("snr_range", aug["snr_range"]),
        ("sigma_kms_range", aug["sigma_kms_range"]),
        ("mask.width_angstrom", aug["mask"]["width_angstrom"]),
    ):
        if lo > hi:
            raise ConfigError(f"invalid config: encoder.augmentation.{key} must be [low, high], got {[lo, hi]}")


def _check_chem(chem: Mapping[str, Any]) -> None:
    """Cross-key rules of the chem: section."""
    for key in ("yields", "alternative_yields"):
        source = chem[key]["source"]
        if source == "chempy" and not chem[key].get("directory"):
            raise ConfigError(
                f"invalid config: chem.{key}.directory must name a CHEMPY yield folder when chem.{key}.source is chempy"
            )
        if source == "vice" and not chem[key].get("preset"):
            raise ConfigError(
                f"invalid config: chem.{key}.preset must name a VICE preset (tng_like, alternative) "
                f"when chem.{key}.source is vice"
            )
    lo, hi = chem["priors"]["birth_time_gyr"]
    if lo >= hi:
        raise ConfigError(f"invalid config: chem.priors.birth_time_gyr must be [low, high], got {[lo, hi]}")
    ms = chem["multistar"]
    if max(ms["star_counts"]) > ms["n_stars"]:
        raise ConfigError(
            f"invalid config: chem.multistar.star_counts {ms['star_counts']} exceed "
            f"chem.multistar.n_stars = {ms['n_stars']}"
        )
    if chem["simulate"]["chunks"] > chem["simulate"]["n_validation"]:
        raise ConfigError(
            "invalid config: chem.simulate.chunks must not exceed chem.simulate.n_validation "
            "(every chunk holds part of both sets)"
        )


def family_value(setting: Any, family: str | None, default: Any) -> Any:
    """A setting given for every family (a plain value) or per family (a mapping; ``default`` for a family it
    leaves out): this family's value."""
    return setting.get(family, default) if isinstance(setting, Mapping) else setting


def config_hash(section: Any) -> str:
    """Short stable hash of a config section, stored in products for provenance."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]

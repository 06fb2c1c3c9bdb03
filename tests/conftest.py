"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    """`../shared` beside the checkout, or $GALAXY_SBI_SHARED."""
    return Path(os.environ.get("GALAXY_SBI_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared data folder; tests that need it skip with a message when it is absent."""
    path = _shared_dir()
    if not (path / "data").is_dir():
        pytest.skip(f"shared data folder not found at {path} (set GALAXY_SBI_SHARED)")
    return path


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name: every test its own stream, the same on every run."""
    from galaxy_sbi.seeding import derived_rng

    return derived_rng(20240711, request.node.nodeid)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def load_rule_glue(config: dict) -> dict:
    """The functions of workflow/rules/common.smk (plain Python, no rules) evaluated for a config."""
    namespace = {"config": config}
    exec(compile((REPO_ROOT / "workflow/rules/common.smk").read_text(), "common.smk", "exec"), namespace)
    return namespace

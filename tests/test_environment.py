"""The cluster rule environment (envs/, `snakemake --sdm conda`) carries what pyproject.toml asks for."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import yaml


def _name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_file_is_generated_from_pyproject(repo_root):
    result = subprocess.run(
        [sys.executable, str(repo_root / "envs/sync_env.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_environment_carries_every_runtime_dependency(repo_root):
    deps = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((repo_root / "envs/galaxy-sbi.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    post_deploy = (repo_root / "envs/galaxy-sbi.post-deploy.sh").read_text()
    for requirement in deps:  # the same pin, in the pip list or built by the post-deploy script
        assert requirement in pip or f'"{requirement}"' in post_deploy, requirement
    assert {_name(r) for r in deps} <= {_name(r) for r in pip} | {"vice"}
    # VICE compiles only against Cython < 3.1, outside pip's build isolation
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "cython <3.1" in conda and "--no-build-isolation" in post_deploy
    vice = next(r for r in deps if _name(r) == "vice")
    assert f'pip install --no-build-isolation "{vice}"' in post_deploy
    assert post_deploy.rstrip().endswith("python -m pip install --no-deps -e .")
    # the Makefile's local build uses the same pins
    makefile = (repo_root / "Makefile").read_text()
    assert f'"{vice}"' in makefile and '"cython<3.1"' in makefile and '"torch==2.13.0"' in makefile

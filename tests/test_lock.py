"""requirements/lock.txt: complete for pyproject.toml, and what the environment actually holds."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata

import pytest

from reprolib import paths
from reprolib.results import LOCK_FILE, lock_fingerprint

ROOT = paths.repo_root()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / LOCK_FILE).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LOCK_FILE}: {line!r} is not pinned with =="
            pins[_canonical(name)] = version.split(";")[0].strip()
    return pins


def test_lock_pins_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + [d for deps in project["optional-dependencies"].values() for d in deps]
    names = {_canonical(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in wanted}
    missing = sorted(names - set(_pins()))
    assert not missing, f"{LOCK_FILE} lacks {missing}: run `make lock`"


def test_lock_pins_torch_and_torchvision_as_pins_in_says():
    pins = _pins()
    wanted = dict(line.split("==") for line in (ROOT / "requirements" / "pins.in").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert {k: pins[k] for k in wanted} == wanted


def test_environment_holds_the_locked_versions():
    stamp = lock_fingerprint()
    if not stamp or not stamp["matches_checkout"]:
        pytest.skip(f"environment {sys.prefix} was not installed from this checkout's lock by make setup")
    wrong = {}
    for name, version in _pins().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, have)
    assert not wrong, f"installed versions differ from {LOCK_FILE} (locked, installed): {wrong}"

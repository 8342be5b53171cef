"""The locks that every install takes agree with pyproject.toml (`make lock` refreshes them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def _requirements(extra: str | None) -> list[Requirement]:
    listed = PROJECT["dependencies"] + (PROJECT["optional-dependencies"][extra] if extra else [])
    return [Requirement(line) for line in listed]


@pytest.mark.parametrize(("lock", "extra"), [("main.lock", None), ("test.lock", "test")])
def test_every_requirement_is_pinned_within_its_range(lock: str, extra: str | None) -> None:
    pins = _pins(lock)
    missing = [str(r) for r in _requirements(extra) if canonicalize_name(r.name) not in pins]
    assert missing == [], f"run `make lock`: {lock} lacks {missing}"
    outside = [
        f"{r} (locked {pins[canonicalize_name(r.name)]})"
        for r in _requirements(extra)
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert outside == [], f"run `make lock`: {lock} pins outside pyproject's ranges: {outside}"


def test_the_test_lock_runs_the_same_versions_as_the_main_lock() -> None:
    main, test = _pins("main.lock"), _pins("test.lock")
    differ = {name: (v, test.get(name)) for name, v in main.items() if test.get(name) != v}
    assert differ == {}


@pytest.mark.parametrize("lock", ["main.lock", "test.lock"])
def test_every_pin_carries_a_hash(lock: str) -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements" / lock).read_text())
    bare = [e.split("==")[0] for e in entries if "==" in e and "--hash=sha256:" not in e]
    assert bare == []

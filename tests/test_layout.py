"""The layout contract: our top-level packages are ours, and imports flow one way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["schema", "web", "resolvers", "privacy", "auth", "models", "migrations"]


@pytest.mark.parametrize("name", [*PACKAGES, "server", "settings", "cli", "observability"])
def test_top_level_names_come_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(ROOT)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _project_files() -> list[Path]:
    return [
        path for package in [*PACKAGES, "tests", "bench"] for path in (ROOT / package).rglob("*.py")
    ] + [ROOT / "settings.py", ROOT / "cli.py", ROOT / "observability.py"]


def test_nothing_imports_server() -> None:
    offenders = [
        path.relative_to(ROOT)
        for path in _project_files()
        if "server" in _imports(path) and path.parent.name not in ("tests", "bench")
    ]
    assert offenders == []


@pytest.mark.parametrize("module", ["settings.py", "observability.py"])
def test_modules_every_layer_imports_import_no_project_package(module: str) -> None:
    assert _imports(ROOT / module).isdisjoint({*PACKAGES, "server", "cli", "settings"})


def test_only_schema_imports_strawberry() -> None:
    offenders = [
        path.relative_to(ROOT)
        for path in [
            *(
                path
                for package in ["web", "resolvers", "privacy", "auth", "models"]
                for path in (ROOT / package).rglob("*.py")
            ),
            ROOT / "server.py",
            ROOT / "cli.py",
        ]
        if "strawberry" in _imports(path)
    ]
    assert offenders == []


def test_web_and_schema_do_not_import_each_other() -> None:
    crossings = [
        path.relative_to(ROOT)
        for package, other in [("web", "schema"), ("schema", "web")]
        for path in (ROOT / package).rglob("*.py")
        if other in _imports(path)
    ]
    assert crossings == []


def test_cli_reaches_no_http_layer() -> None:
    assert _imports(ROOT / "cli.py").isdisjoint({"server", "web", "schema"})

"""Rules written once: checked on the source, so a second copy fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _trees(*packages: str) -> list[tuple[Path, ast.AST]]:
    return [
        (path, ast.parse(path.read_text()))
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def test_the_schema_never_builds_a_relation() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _trees("schema")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) == "Relation"
    ]
    assert offenders == []


def test_domain_errors_are_caught_only_in_schema_errors() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _trees("schema")
        if path.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler) and "DomainError" in ast.unparse(node.type or node)
    ]
    assert offenders == []


def test_every_audit_action_is_a_member_of_the_enum() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _trees("resolvers", "privacy", "auth")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) in {"record", "Entry", "_audit"}
        for value in [
            *(keyword.value for keyword in node.keywords if keyword.arg == "action"),
            *(node.args[1:2] if _called_name(node) == "_audit" else []),
        ]
        if isinstance(value, ast.Constant | ast.JoinedStr)
    ]
    assert offenders == []

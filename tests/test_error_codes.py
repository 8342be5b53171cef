"""Every error code the code can send is in the README's one table of error codes.

Codes are upper-case string literals in the packages that answer callers; each literal found
there is either a row of the table or named below as not being a code.
"""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

PACKAGES = ("schema", "web", "resolvers", "auth", "privacy")
CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,}")
# Upper-case literals that are not error codes a caller sees.
NOT_CODES = {
    "GRAPHQL_ERROR": "the log's word for an error without a code (schema/__init__.py)",
    "UNCODED": "the metrics label for an error without a code",
    "NFKC": "a Unicode normalisation form",
    "POST": "an HTTP method",
}


def _literals() -> dict[str, str]:
    """Every upper-case string literal outside `__all__`, with the first file holding it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            exported = {
                id(element)
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign)
                and any(getattr(target, "id", None) == "__all__" for target in node.targets)
                and isinstance(node.value, ast.List | ast.Tuple)
                for element in node.value.elts
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in exported
                    and CODE.fullmatch(node.value)
                ):
                    found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Error codes", 1)[1].split("\n\n| code |", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()
    return {match.group(1) for row in rows if (match := re.match(r"\| `([A-Z_]+)` \|", row))}


def test_every_error_code_in_the_code_is_in_the_readme_table() -> None:
    documented = _documented()
    literals = _literals()
    missing = {
        code: path
        for code, path in literals.items()
        if code not in documented and code not in NOT_CODES
    }
    assert missing == {}, f"error codes missing from README's table: {missing}"
    # The table lists only codes that exist, and the scan finds the ones it must.
    assert documented - set(literals) == set()
    assert {"FORBIDDEN", "SESSION_EXPIRED", "INVALID_INPUT", "RATE_LIMITED"} <= documented
    assert set(NOT_CODES) <= set(literals), "drop exclusions that no longer occur"

"""P11 ("we comply with GDPR") is kept by P19–P30: each of those promises has a test of its
own, marked with its id. This reads the marks off the suite as pytest collects it, so a
promise whose last marked test is deleted, renamed away or skipped unconditionally fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# The promises P11 names (PROMISES.md: "Covered by P19–P30"); P17 was never a promise.
GDPR_PROMISES = [f"P{number}" for number in range(19, 31)]


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def _promises(marks: list[ast.expr], where: str) -> list[str]:
    found = []
    for mark in marks:
        if _decorator_name(mark) != "pytest.mark.promise":
            continue
        assert isinstance(mark, ast.Call), where
        (argument,) = mark.args
        assert isinstance(argument, ast.Constant), where
        found.append(str(argument.value))
    return found


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    """What a module's ``pytestmark = mark`` or ``= [marks]`` applies to every test in it."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            value = node.value
            return list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return []


def marked_tests(directory: Path = TESTS) -> dict[str, list[str]]:
    """Promise id -> the test functions (file::name) marked with it and not skipped outright."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marks = _module_marks(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test_"):
                continue
            marks = [*module_marks, *node.decorator_list]
            if "pytest.mark.skip" in [_decorator_name(mark) for mark in marks]:
                continue
            where = f"{path.name}::{node.name}"
            for promise in _promises(marks, where):
                found.setdefault(promise, []).append(where)
    return found


@pytest.mark.promise("P11")
@pytest.mark.parametrize("promise", GDPR_PROMISES)
def test_each_gdpr_promise_has_a_marked_test(promise: str) -> None:
    assert marked_tests().get(promise), f"no test is marked with {promise}"


def test_the_reader_finds_marks_and_ignores_skipped_tests(tmp_path: Path) -> None:
    """The reader above is what the P11 check stands on: it sees this very file's mark, and a
    skipped test or a helper that is not a test counts for nothing."""
    found = marked_tests()
    assert "test_gdpr_coverage.py::test_each_gdpr_promise_has_a_marked_test" in found["P11"]
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        '@pytest.mark.skip\n@pytest.mark.promise("P99")\ndef test_x(): pass\n'
        '@pytest.mark.promise("P98")\ndef helper(): pass\n'
        'class TestGroup:\n    @pytest.mark.promise("P97")\n    async def test_y(self): pass\n',
        encoding="utf-8",
    )
    (tmp_path / "test_module.py").write_text(
        'import pytest\npytestmark = [pytest.mark.promise("P95")]\ndef test_w(): pass\n',
        encoding="utf-8",
    )
    (tmp_path / "other.py").write_text('@pytest.mark.promise("P96")\ndef test_z(): pass\n')
    assert marked_tests(tmp_path) == {
        "P95": ["test_module.py::test_w"],
        "P97": ["test_sample.py::test_y"],
    }

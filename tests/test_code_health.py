"""Size limits that keep the code easy to change (issue 13): short functions, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

MAX_FUNCTION_LINES = 100
MAX_STYLIZE_MODULE_LINES = 400


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in ``path``, decorators included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.append((f"{prefix}{child.name}", child.end_lineno - first + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def _sources() -> list[Path]:
    packages = (ROOT / "service", ROOT / "pipeline")
    return [ROOT / "app.py", *(path for package in packages for path in sorted(package.rglob("*.py")))]


def test_function_lengths_are_measured(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "@decorator\n"
        "def outer():\n"
        "    def inner():\n"
        "        return 1\n"
        "    return inner\n"
        "\n"
        "class Thing:\n"
        "    async def method(self):\n"
        "        pass\n"
    )
    assert function_lengths(source) == [("outer", 5), ("outer.inner", 2), ("Thing.method", 2)]


def test_no_function_longer_than_100_lines():
    too_long = [
        f"{path.relative_to(ROOT)}:{name} ({lines} lines)"
        for path in _sources()
        for name, lines in function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert too_long == []


def test_no_stylize_module_over_400_lines():
    too_big = {
        path.name: lines
        for path in (ROOT / "pipeline" / "stylize").glob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_STYLIZE_MODULE_LINES
    }
    assert too_big == {}

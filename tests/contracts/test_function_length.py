"""No function in installer/ is longer than 80 lines: a longer one is split by what it does."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "installer"
LIMIT = 80


def _long_functions(tree: ast.AST) -> list[tuple[str, int]]:
    return [(fn.name, fn.end_lineno - fn.lineno + 1) for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.end_lineno - fn.lineno + 1 > LIMIT]


def test_no_function_is_over_80_lines():
    found = [f"installer/{p.relative_to(PACKAGE).as_posix()}: {name} ({n} lines)"
             for p in sorted(PACKAGE.rglob("*.py")) for name, n in _long_functions(ast.parse(p.read_text()))]
    assert found == []


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert _long_functions(ast.parse(f"def f():\n{body}\n")) == [("f", LIMIT + 1)]

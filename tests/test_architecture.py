"""Size limits that keep the product readable: no module over 500 lines, no function over 60.

The layers themselves (core below provenance below adapters and generation, adapters
independent, nothing importing the composition root) are checked by import-linter
(`lint-imports`, contracts in pyproject.toml, run by `make lint`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("avatarbot", "bot", "adapters", "generation", "provenance")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def product_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method longer than `limit`, decorators included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - start + 1
            if lines > limit:
                found.append((node.name, lines))
    return found


def test_the_checks_see_a_long_function_and_the_modules_exist() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def short():\n    return 1\n\nasync def long():\n{body}\n") == [
        ("long", MAX_FUNCTION_LINES + 1)
    ]
    names = {p.relative_to(ROOT).as_posix() for p in product_modules()}
    assert {"avatarbot/wiring.py", "bot/conversation.py", "generation/worker.py"} <= names


@pytest.mark.parametrize(
    "path",
    product_modules(),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_module_and_function_sizes(path: Path) -> None:
    source = path.read_text()
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it by noun"
    assert long_functions(source) == [], f"{path.relative_to(ROOT)}: functions too long"

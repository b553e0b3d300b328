"""The packages form layers: each imports only from layers below it, so there is no import
cycle between packages (the top-level ``plismbench/__init__.py`` API facade aside).

Every import counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import plismbench

#: Lowest first. A package may import from any layer below its own, never beside or above.
LAYERS: list[set[str]] = [
    {"errors", "assets"},
    {"utils"},
    {"data"},
    {"metrics", "extractors"},
    {"store"},
    {"stats", "extraction", "distillation"},
    {"evaluation"},
    {"analysis"},
    {"reporting"},
    {"pipeline"},
    {"cli"},
    {"__main__"},
]
ROOT = Path(plismbench.__file__).parent


def _layer(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"plismbench.{package} is in no layer: add it to LAYERS")


def _package(module: str) -> str:
    return module.split(".")[1]


def import_edges() -> list[tuple[str, str, str]]:
    """``(importing package, imported package, file)`` for every cross-package import."""
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel == Path("__init__.py"):
            continue  # the API facade re-exports every layer by design
        here = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("plismbench.") and _package(name) != here:
                    edges.append((here, _package(name), str(rel)))
    return edges


def test_every_package_has_a_layer() -> None:
    for path in ROOT.iterdir():
        if path.name.startswith(("_", ".")) and path.name != "__main__.py":
            continue
        if path.is_dir() or path.suffix == ".py":
            _layer(path.name.removesuffix(".py"))


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{file}: {a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
        for a, b, file in import_edges()
        if _layer(b) >= _layer(a)
    ]
    assert not upward, "\n".join(upward)


def test_the_check_can_fail() -> None:
    """The scan sees a lazy import inside a function."""
    tree = ast.parse("def f():\n    from plismbench.cli.app import app\n")
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found == ["plismbench.cli.app"]
    assert _layer(_package("plismbench.cli.app")) > _layer("store")

"""Packaging: every Python package folder is declared in pyproject.toml (else a regular, non-editable
install silently leaves it out), and the design's dependency rules between layers hold."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import ROOT

MAPPING = {"convertkit": "convertkit", "convertkit.frontends": "frontends",
           "convertkit.canonical_ir": "canonical_ir", "convertkit.backends": "backends"}


def _package_folders() -> set[str]:
    found = set()
    for pkg, folder in MAPPING.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((pkg, *rel)) if rel else pkg)
    return found


def test_every_package_is_declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    assert _package_folders() <= declared, f"missing from pyproject: {_package_folders() - declared}"
    assert config["tool"]["setuptools"]["package-dir"] == {k: v for k, v in MAPPING.items() if k != "convertkit"}


def _imports(folder: str) -> dict[Path, set[str]]:
    out = {}
    for path in (ROOT / folder).rglob("*.py"):
        mods = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods.add(node.module)
            elif isinstance(node, ast.Import):
                mods.update(a.name for a in node.names)
        out[path] = mods
    return out


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {m}" for p, mods in _imports(folder).items() for m in mods
            if m.startswith(forbidden)]


def test_layer_dependency_rules():
    """canonical_ir imports no frontend/backend/CLI; frontends and backends never import each other."""
    upper = ("convertkit.frontends", "convertkit.backends", "convertkit.cli", "convertkit.api",
             "convertkit.pipeline", "convertkit.verify", "convertkit.report")
    assert not _violations("canonical_ir", upper)
    assert not _violations("frontends", ("convertkit.backends", "convertkit.cli", "convertkit.api",
                                         "convertkit.pipeline"))
    assert not _violations("backends", ("convertkit.frontends", "convertkit.cli", "convertkit.api",
                                        "convertkit.pipeline"))

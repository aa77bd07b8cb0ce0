"""The wheel carries every data file the package reads: each non-Python file under bargein/
matches a `[tool.setuptools.package-data]` glob (a held-out set left out worked only from a
source checkout)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_under_the_package_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["bargein"]
    package = ROOT / "bargein"
    data = [
        p.relative_to(package)
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert len(data) > 100  # the scenario sets, the page, py.typed
    unshipped = [str(p) for p in data if not any(p.match(g) for g in globs)]
    assert not unshipped, unshipped

"""The console ships in the package: every template and asset is package data."""

from __future__ import annotations

import glob
import tomllib

from tests.helpers import REPO

PACKAGE = REPO / "src" / "soulwatch"


def test_every_console_file_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["soulwatch"]
    console = PACKAGE / "api" / "console"
    files = {
        p
        for folder in ("templates", "static")
        for p in (console / folder).rglob("*")
        if p.is_file()
    }
    assert len(files) > 20
    # setuptools expands the globs as glob.glob does, "**" included.
    shipped = {PACKAGE / m for g in globs for m in glob.glob(g, root_dir=PACKAGE, recursive=True)}
    assert sorted(str(f) for f in files - shipped) == []
    # The chart library comes with its licence.
    assert (
        (console / "static" / "vendor" / "uplot" / "LICENSE")
        .read_text()
        .startswith("The MIT License")
    )

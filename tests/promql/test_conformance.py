"""Prometheus's own PromQL test scripts, run through soulwatch's engine.

One test per script; it fails listing every failed case (file:line, query,
expected, got). Cases that need a feature out of scope (native histograms,
experimental functions, duration expressions...) are counted as unsupported
by the runner, never skipped here. Without the shared conformance data (a
clone of the repository alone) the tests skip, saying so; in CI they fail.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from soulwatch.promql.engine import Engine
from soulwatch.promql.promqltest import Outcome, run_file
from tests.helpers import CONFORMANCE_DIR, need_conformance

SCRIPTS = sorted(CONFORMANCE_DIR.glob("*.test"))


def test_the_conformance_scripts_are_present() -> None:
    assert len(need_conformance()) >= 8


# Prometheus 3's defaults, and the feature flags Prometheus's own runner enables.
FEATURES = {"default": [], "delayed-names": ["promql-delayed-name-removal"]}


@pytest.mark.parametrize("features", FEATURES.values(), ids=FEATURES.keys())
@pytest.mark.parametrize(
    "script",
    SCRIPTS or [pytest.param(None, id="no-scripts")],
    ids=[p.name for p in SCRIPTS] or None,
)
def test_conformance_script(script: Path | None, features: list[str]) -> None:
    if script is None:  # no shared data: skip (or fail in CI) saying why
        need_conformance()
        return
    report = run_file(script, functools.partial(Engine, features=features))
    assert report.passed > 0
    failures = [
        f"{case.file}:{case.line}: {case.query}\n    {case.reason}\n"
        f"    expected: {case.expected}\n    got:      {case.got}"
        for case in report.cases
        if case.outcome is Outcome.FAILED
    ]
    summary = f"{report.passed} passed, {report.failed} failed, {report.unsupported} unsupported"
    assert not failures, summary + "\n" + "\n".join(failures)

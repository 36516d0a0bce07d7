"""scripts/try_on_soulcaster.py applies the lines docs/soulcaster.md prints, not others.

The script itself needs a Soulcaster checkout, uv and the package index, so it
is run by hand (its last results are in the doc); what can drift offline is
the text: the doc's adoption lines, the script's copy of them, and the test
app's copy.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "soulcaster.md").read_text()


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "try_on_soulcaster", ROOT / "scripts" / "try_on_soulcaster.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("try_on_soulcaster", module)
    spec.loader.exec_module(module)
    return module


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_backend_lines_applied_are_the_docs_and_the_test_apps() -> None:
    script = _script()
    applied = "\n".join(_code_lines(script.MAIN_LINES))
    assert applied in "\n".join(_code_lines(DOC)), "docs/soulcaster.md section 2 prints them"
    test_app = (ROOT / "tests" / "soulcaster_app" / "main.py").read_text()
    assert _code_lines(script.MAIN_LINES)[-1] in _code_lines(test_app)


def test_the_poller_lines_applied_are_the_docs() -> None:
    script = _script()
    doc = _code_lines(DOC)
    for line in _code_lines(script.POLLER_LINES) + _code_lines(script.POLLER_LOOP_NEW):
        assert line in doc, f"{line!r} is not in docs/soulcaster.md section 3"


def test_the_dashboard_files_are_read_from_the_doc() -> None:
    script = _script()
    route = script.doc_block("add `dashboard/app/api/health/route.ts`")
    assert route.startswith("import { NextResponse } from 'next/server';")
    assert "export async function GET()" in route
    assert "status: 503" in route
    declaration = script.doc_block("a new `dashboard/types/soulwatch.d.ts`")
    assert "interface Window" in declaration
    assert "reportError" in declaration

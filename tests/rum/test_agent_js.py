"""The browser agent's own tests (Node's test runner), and its size budget."""

from __future__ import annotations

import subprocess
from pathlib import Path

from soulwatch.rum.agent import module_script, tag_script
from tests.helpers import need_binary

HERE = Path(__file__).parent


def test_the_agents_node_tests_pass() -> None:
    node = need_binary("node")
    done = subprocess.run(
        [node, "--test", str(HERE / "js")], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_the_agent_stays_under_5_kb_gzipped() -> None:
    for script in (tag_script(), module_script()):
        assert len(script.gzipped) < 5 * 1024, len(script.gzipped)
        assert b"sourceMappingURL" not in script.body


def test_the_module_exports_init_and_report_error() -> None:
    text = module_script().body.decode()
    assert "export function init(" in text
    assert "export function reportError(" in text

"""The runbooks page the rule pack's links open, and the link resolution of notifications."""

from __future__ import annotations

import re
from importlib.resources import files

from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.api.runbooks import runbooks_html
from soulwatch.rules.loader import load_rule_files
from tests.helpers import REPO

PACK = REPO / "src" / "soulwatch" / "presets" / "soulcaster" / "rules"


def test_the_packaged_runbooks_are_the_documented_ones() -> None:
    packaged = files("soulwatch.presets").joinpath("soulcaster", "runbooks.md").read_text()
    assert packaged == (REPO / "docs" / "runbooks.md").read_text()


def test_every_rule_runbook_link_has_its_section_on_the_page() -> None:
    ids = set(re.findall(r'<h2 id="([^"]+)">', runbooks_html()))
    rules = [r for g in load_rule_files(sorted(PACK.glob("*.yml"))) for r in g.rules if r.is_alert]
    assert rules
    for rule in rules:
        path, _, fragment = rule.annotations["runbook_url"].partition("#")
        assert path == "docs/runbooks.md", rule.name
        assert fragment in ids, rule.name


def _notification(runbook: str, external_url: str) -> Notification:
    info = AlertInfo(
        status=Status.FIRING,
        labels={"alertname": "BackendDown"},
        annotations={"runbook_url": runbook, "dashboard_url": "", "summary": "docs/x"},
        starts_at=0.0,
        ends_at=None,
        fingerprint="f",
    )
    return Notification("page", "page/slack/0", "{}", {}, Status.FIRING, [info], external_url)


def test_relative_links_become_absolute_against_the_external_url() -> None:
    n = _notification("docs/runbooks.md#backenddown", "https://sw.example/")
    assert n.alerts[0].annotations == {
        "runbook_url": "https://sw.example/docs/runbooks.md#backenddown",
        "dashboard_url": "",
        "summary": "docs/x",
    }
    again = Notification.from_json(n.to_json())
    assert again.alerts == n.alerts
    kept = _notification("https://wiki.example/rb#x", "https://sw.example")
    assert kept.alerts[0].annotations["runbook_url"] == "https://wiki.example/rb#x"

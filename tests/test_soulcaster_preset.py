"""The Soulcaster preset points at what Soulcaster really serves."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from soulwatch.presets import soulcaster as preset
from tests.soulcaster_app import dashboard

PRESET = Path(preset.__file__).parent
DOCS = Path(__file__).resolve().parents[1] / "docs" / "soulcaster.md"


def _config() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((PRESET / "soulwatch.yaml").read_text())
    return loaded


def test_dashboard_probes_hit_routes_that_exist_and_answer_without_a_session() -> None:
    [probe] = [p for p in _config()["probes"] if p["job_name"] == "dashboard-pages"]  # type: ignore[attr-defined]
    paths = [urlsplit(t).path for t in probe["targets"]]
    assert any(p.startswith("/api/") for p in paths), "one API route is probed"
    for path in paths:
        assert dashboard.serves(path), f"the dashboard has no route for {path}"
        assert dashboard.public(path), f"{path} would be redirected to /auth/signin"


def test_the_health_route_the_docs_add_does_not_exist_yet_and_is_made_public() -> None:
    assert not dashboard.serves("/api/health")
    docs = DOCS.read_text()
    assert "dashboard/app/api/health/route.ts" in docs
    assert "'/api/health'" in docs
    assert "publicPaths" in docs


def test_no_scrape_of_a_dashboard_route_that_does_not_exist() -> None:
    scrapes = _config()["scrape_configs"]
    for job in scrapes:  # type: ignore[attr-defined]
        for target in job["static_configs"][0]["targets"]:
            if target.endswith(":3000"):
                assert dashboard.serves(job.get("metrics_path", "/metrics"))


def test_stuck_job_alerts_link_to_a_dashboard_page_that_exists() -> None:
    agents = yaml.safe_load((PRESET / "rules" / "agents.yml").read_text())
    links = [
        r["annotations"]["dashboard_url"]
        for g in agents["groups"]
        for r in g["rules"]
        if r.get("alert", "").startswith("AgentJobStuck")
    ]
    assert len(links) == 2
    for link in links:
        path = link.replace("{{ $externalLabels.dashboard_url }}", "").replace(
            "{{ $labels.cluster_id }}", "cluster-42"
        )
        assert dashboard.serves(path), path
    assert _config()["global"]["external_labels"]["dashboard_url"]  # type: ignore[index]

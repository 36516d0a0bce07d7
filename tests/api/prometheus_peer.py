"""A real Prometheus 2.42 holding a given data set (backfilled with promtool), for comparisons.

The same samples are written as OpenMetrics text, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by ``prometheus``
on 127.0.0.1; :func:`dataset` also returns them as ``(labels, t_ms, value)``
to load into soulwatch's storage.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from soulwatch.tsdb.model import Labels
from tests.helpers import need_binary
from tests.peers import prometheus_peer

STEP_S = 15
POINTS = 160  # 40 minutes


def dataset(end_s: int) -> tuple[str, list[tuple[Labels, int, float]]]:
    """OpenMetrics text and the same samples, every 15 s up to ``end_s``."""
    start = end_s - STEP_S * POINTS
    families: dict[str, tuple[str, list[tuple[Labels, int, float]]]] = {
        "http_requests": ("counter", []),
        "temperature_celsius": ("gauge", []),
        "http_request_duration_seconds": ("histogram", []),
    }
    bounds = ["0.1", "0.5", "1", "2.5", "+Inf"]
    for i in range(POINTS):
        t = start + i * STEP_S
        for job, instance in (("api", "a:1"), ("api", "a:2"), ("web", "w:1")):
            for code, rate in (("200", 7), ("500", 1)):
                value = float(i * rate * (2 if instance == "a:2" else 1) + (i * i) % 5)
                labels = Labels.of(
                    __name__="http_requests_total", job=job, instance=instance, code=code
                )
                families["http_requests"][1].append((labels, t, value))
            temp = 15.0 + (i % 12) * 1.25 + {"a:1": 0.0, "a:2": 0.5, "w:1": 3.5}[instance]
            labels = Labels.of(__name__="temperature_celsius", job=job, instance=instance)
            families["temperature_celsius"][1].append((labels, t, temp))
            cumulative = 0.0
            for j, le in enumerate(bounds):
                cumulative += float(i * (5 - j) + j)
                labels = Labels.of(
                    __name__="http_request_duration_seconds_bucket",
                    job=job,
                    instance=instance,
                    le=le,
                )
                families["http_request_duration_seconds"][1].append((labels, t, cumulative))
            base = {"job": job, "instance": instance}
            hist = families["http_request_duration_seconds"][1]
            hist.append(
                (Labels.of(base, __name__="http_request_duration_seconds_count"), t, cumulative)
            )
            hist.append(
                (Labels.of(base, __name__="http_request_duration_seconds_sum"), t, cumulative * 0.3)
            )
    lines: list[str] = []
    samples: list[tuple[Labels, int, float]] = []
    for family, (kind, items) in families.items():
        lines.append(f"# TYPE {family} {kind}")
        # OpenMetrics wants each series' samples together and in time order.
        for labels, t, value in sorted(items, key=lambda s: (s[0], s[1])):
            inner = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
            lines.append(f"{labels.name}{{{inner}}} {value!r} {t}")
            samples.append((labels, t * 1000, value))
    lines.append("# EOF")
    return "\n".join(lines) + "\n", samples


@contextlib.contextmanager
def prometheus_with(openmetrics: str, workdir: Path) -> Iterator[str]:
    """A running Prometheus serving ``openmetrics`` (backfilled); yields its base URL."""
    promtool = need_binary("promtool")
    data = workdir / "prom-data"
    data.mkdir()
    source = workdir / "data.om"
    source.write_text(openmetrics)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    with prometheus_peer(config, data, flags=["--storage.tsdb.retention.time=30d"]) as url:
        yield url

"""A target in steady state stores, reports and logs exactly what the full scrape path does.

Two targets scrape the same real HTTP server into two embedded TSDBs at the
same simulated times. One runs as shipped (it takes the steady-state
shortcut whenever a body has the last one's lines); the other leaves the
steady state before every scrape, so every body goes through the full parser
and the per-sample loop. Random sequences of bodies (changed values, vanished,
new and reordered series, duplicates, own timestamps, bad values, failed
scrapes) under relabelling and limits must leave both stores identical, before
and after a restart replays the WAL, with identical report series and status.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.runner import run_inline
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager
from soulwatch.sources.scrape.target import ScrapeTarget
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Matcher, MatchType
from tests.helpers import UvicornThread
from tests.sources.support import OPENMETRICS, TEXT, Exposition, metrics_app

PATHS = ["/a", "/b", "/c", "/d", "/e", "/f"]
CODES = ["200", "500"]


def _config(port: int, **extra: Any) -> ScrapeConfig:
    return ScrapeConfig.model_validate(
        {
            "job_name": "api",
            "scrape_interval": "15s",
            "scrape_timeout": "2s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"env": "t"}}],
            **extra,
        }
    ).resolved()


CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "relabel": {
        "metric_relabel_configs": [
            # drop one path, rename another, and make a passing one collide with /a
            {"source_labels": ["path"], "regex": "/b", "action": "drop"},
            {"source_labels": ["path"], "regex": "/c", "target_label": "path", "replacement": "c"},
            {"source_labels": ["path"], "regex": "/x", "target_label": "path", "replacement": "/a"},
        ]
    },
    "limits": {"sample_limit": 9, "label_limit": 6, "series_limit": 8},
    "honor_labels": {"honor_labels": True, "honor_timestamps": False},
    "openmetrics": {},  # the same bodies in OpenMetrics (seconds, '# EOF')
}


def _dump(db: TSDB) -> dict[str, list[tuple[int, bytes]]]:
    # bit patterns, so a staleness marker and a plain NaN are told apart
    out: dict[str, list[tuple[int, bytes]]] = {}
    for series in db.select([Matcher(MatchType.REGEX, "__name__", ".+")], 0, 2**62):
        out[str(series.labels)] = [(t, struct.pack("<d", v)) for t, v in series]
    return out


def _status(target: ScrapeTarget) -> tuple[object, ...]:
    s = target.status
    return (
        s.health,
        s.last_error,
        s.samples_scraped,
        s.duplicates_dropped,
        s.out_of_order_dropped,
        s.series_rejected,
        s.samples_rejected,
    )


@dataclass
class _Body:
    """A body as lines of ``(series text, value, timestamp or "")`` and comment lines."""

    lines: list[tuple[str, str, str]]
    help_text: str = "Requests."
    om: bool = False

    def render(self) -> str:
        out = [f"# HELP req_total {self.help_text}", "# TYPE req_total counter"]
        for key, value, ts_ms in self.lines:
            ts = f"{int(ts_ms) / 1000:.3f}" if ts_ms and self.om else ts_ms
            out.append(f"{key} {value} {ts}" if ts else f"{key} {value}")
        if self.om:
            out.append("# EOF")
        return "\n".join(out) + "\n"


def _bodies(seed: int, steps: int, om: bool) -> Iterator[tuple[str, bytes | str | None]]:
    """``(what changed, body)``; a body of ``None`` is an HTTP 500.

    Series vanishing, appearing, reordering and HELP changes last; the other
    changes (duplicates, own timestamps, bad values, ...) are for one scrape.
    """
    rnd = random.Random(seed)
    keys = [f'req_total{{path="{p}",code="{c}"}}' for p in PATHS for c in CODES[:1]]
    keys.append('queue_depth{queue="q1"}')
    base = _Body([(k, "0", "") for k in keys], om=om)
    counter = 100
    for _ in range(steps):
        counter += 1
        roll = rnd.random()
        if roll >= 0.5:  # otherwise the same values as last time
            base.lines = [(k, str(counter * rnd.randint(1, 3)), "") for k, _, _ in base.lines]
        lines = list(base.lines)
        what = "values"
        if roll < 0.5:
            what = "same values"
        elif roll < 0.6:
            pass
        elif roll < 0.63 and len(lines) > 2:
            base.lines.pop(rnd.randrange(len(lines)))
            what = "a series vanished"
        elif roll < 0.66:
            if len(base.lines) > 8:
                base.lines.pop(0)
            base.lines.append((f'req_total{{path="/new{counter}",code="200"}}', "1", ""))
            what = "a new series"
        elif roll < 0.68:
            i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
            base.lines[i], base.lines[j] = base.lines[j], base.lines[i]
            what = "reordered"
        elif roll < 0.7:
            base.help_text = f"Requests ({counter})."
            what = "help changed"
        elif roll < 0.73:
            lines.append(lines[rnd.randrange(len(lines))])
            what = "a duplicate"
        elif roll < 0.76:
            # the same series written with its labels the other way round
            key = lines[0][0]
            if "path=" in key:
                path, code = key[len("req_total{") : -1].split(",")
                lines.append((f"req_total{{{code},{path}}}", "7", ""))
            what = "one series, two texts"
        elif roll < 0.8:
            i = rnd.randrange(len(lines))
            ts = str(1_700_000_000_000 + (counter - 100) * 15_000 - rnd.choice([0, 10**9, -20_000]))
            lines[i] = (lines[i][0], lines[i][1], ts)
            what = "own timestamp"
        elif roll < 0.85:
            i = rnd.randrange(len(lines))
            token = rnd.choice(["NaN", "+Inf", "-Inf", "1e3", "1_000", "x", "", "2 3 4", "0x1"])
            lines[i] = (lines[i][0], token, "")
            what = f"value {token!r}"
        elif roll < 0.88:
            yield "HTTP 500", None
            continue
        elif roll < 0.9:
            yield "invalid UTF-8", base.render().encode() + b"bad\xff 1\n"
            continue
        elif roll < 0.92:
            lines.append(('wide{a="1",b="2",c="3",d="4",e="5"}', "1", ""))
            what = "many labels"
        elif roll < 0.94:
            lines.append(('req_total{path="/x",code="200"}', "5", ""))
            what = "a passing series"
        else:
            yield "leading blank", "\n  " + base.render()
            continue
        yield what, _Body(lines, base.help_text, om).render()


class _Side:
    """One target into one TSDB (reopened on a restart)."""

    def __init__(self, path: Path, clock: SimulatedClock, config: ScrapeConfig) -> None:
        self.path = path
        self.clock = clock
        self.config = config
        self.db = TSDB(StorageConfig(path=path), clock=clock)
        self.manager = ScrapeManager([config], self.db, clock=clock, runner=run_inline)
        self.target = self.manager.targets[0]

    async def restart(self) -> None:
        await self.manager.stop()
        self.db.close()
        self.db = TSDB(StorageConfig(path=self.path), clock=self.clock)
        self.manager = ScrapeManager([self.config], self.db, clock=self.clock, runner=run_inline)
        self.target = self.manager.targets[0]

    async def close(self) -> None:
        await self.manager.stop()
        self.db.close()


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2])
async def test_the_steady_state_stores_what_the_full_path_stores(
    config: str, seed: int, tmp_path: Path
) -> None:
    clock = SimulatedClock()
    om = config == "openmetrics"
    expo = Exposition("", content_type=OPENMETRICS if om else TEXT)
    steady_scrapes = 0
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        cfg = _config(srv.port, **CONFIGS[config])
        shipped = _Side(tmp_path / "shipped", clock, cfg)
        full = _Side(tmp_path / "full", clock, cfg)
        try:
            for step, (what, body) in enumerate(_bodies(seed, 80, om)):
                if step in (30, 60):
                    await shipped.restart()
                    await full.restart()
                    assert _dump(shipped.db) == _dump(full.db), f"after restart at {step}"
                expo.status = 500 if body is None else 200
                expo.set(body or "")
                await clock.advance(15)
                before = shipped.target._steady
                full.target._settle()  # the full path for every body
                await shipped.target.run_once(clock.time())
                await full.target.run_once(clock.time())
                if before is not None and shipped.target._steady is before:
                    steady_scrapes += 1
                assert _status(shipped.target) == _status(full.target), f"step {step}: {what}"
                assert _dump(shipped.db) == _dump(full.db), f"step {step}: {what}"
        finally:
            await shipped.close()
            await full.close()
    # what a restart replays from the WAL is the same too
    with (
        TSDB(StorageConfig(path=tmp_path / "shipped"), clock=clock) as a,
        TSDB(StorageConfig(path=tmp_path / "full"), clock=clock) as b,
    ):
        assert a.replay.samples_replayed == b.replay.samples_replayed > 0
        assert _dump(a) == _dump(b)
    # the shortcut was taken often enough for the comparison to mean something
    assert steady_scrapes >= 10

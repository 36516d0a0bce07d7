"""Scraping into the embedded TSDB: samples survive a reopen, limits drop series but not `up`."""

from __future__ import annotations

from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.sources.base import Health
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import is_stale_nan
from tests.helpers import UvicornThread
from tests.sources.support import Exposition, metrics_app, only, samples_of


def _job(port: int) -> ScrapeConfig:
    return ScrapeConfig.model_validate(
        {
            "job_name": "api",
            "scrape_interval": "15s",
            "scrape_timeout": "2s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    ).resolved()


async def test_scrapes_land_in_the_tsdb_and_survive_a_reopen(
    clock: SimulatedClock, tmp_path: Path
) -> None:
    expo = Exposition('requests_total{code="200"} 5\nrequests_total{code="500"} 1\n')
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        db = TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock)
        manager = ScrapeManager([_job(srv.port)], db, clock=clock)
        manager.start()
        try:
            await clock.advance(15)
            await manager.settled()
            expo.set('requests_total{code="200"} 9\n')
            await clock.advance(15)
            await manager.settled()
        finally:
            await manager.stop()
            db.close()
    with TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock) as reopened:
        ok = only(reopened, "requests_total", code="200")
        assert [v for _, v in ok[:2]] == [5.0, 9.0]
        assert ok[1][0] - ok[0][0] == 15_000
        failed = only(reopened, "requests_total", code="500")
        assert failed[0][1] == 1.0
        assert is_stale_nan(failed[1][1])
        assert [v for _, v in only(reopened, "up", job="api")[:2]] == [1.0, 1.0]


async def test_a_tsdb_series_limit_drops_new_series_but_never_up(
    clock: SimulatedClock, tmp_path: Path
) -> None:
    body = "".join(f'wide{{i="{i}"}} {i}\n' for i in range(20))
    with UvicornThread(metrics_app(metrics=Exposition(body))) as srv:
        db = TSDB(StorageConfig(path=tmp_path / "tsdb", series_limit_total=10), clock=clock)
        manager = ScrapeManager([_job(srv.port)], db, clock=clock)
        manager.start()
        try:
            await clock.advance(15)
            await manager.settled()
            target = manager.targets[0]
            assert only(db, "up")[0][1] == 1.0
            assert target.status.health is Health.UP
            stored = len(samples_of(db, "wide"))
            assert stored == 10 - 5  # the five report series came first
            assert target.status.series_rejected + target.status.samples_rejected == 20 - stored
        finally:
            await manager.stop()
            db.close()


async def test_every_scrape_lands_on_its_own_series_once_the_target_holds_series_refs(
    clock: SimulatedClock, tmp_path: Path
) -> None:
    # From the third scrape on, the target appends through the TSDB's series refs.
    expo = Exposition("")
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        db = TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock)
        manager = ScrapeManager([_job(srv.port)], db, clock=clock)
        manager.start()
        try:
            for n in range(1, 6):
                expo.set(f'jobs_total{{q="a"}} {n}\njobs_total{{q="b"}} {10 * n}\n')
                await clock.advance(15)
                await manager.settled()
            assert [v for _, v in only(db, "jobs_total", q="a")] == [1.0, 2.0, 3.0, 4.0, 5.0]
            assert [v for _, v in only(db, "jobs_total", q="b")] == [10.0, 20.0, 30.0, 40.0, 50.0]
            assert [v for _, v in only(db, "up", job="api")] == [1.0] * 5
        finally:
            await manager.stop()
            db.close()

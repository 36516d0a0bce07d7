"""A monitor-like process for the kill -9 test: sends alerts through the real outbox.

Usage: python -m tests.alerting.crash_worker DATA_DIR WEBHOOK_URL GROUPS

It sends GROUPS alerts (one group each), as the rule evaluator would after a
(re)start, and delivers until killed or until nothing is pending.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from soulwatch.alerting.config import parse_config
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.notifiers.factory import build_notifiers
from soulwatch.alerting.outbox import Outbox, RowState
from soulwatch.alerts import Alert
from soulwatch.clock import SystemClock
from soulwatch.tsdb.model import Labels

STARTS_AT = 1_700_000_000.0


async def main(data_dir: Path, url: str, groups: int) -> None:
    config = parse_config(
        f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook"}}]
"""
    )
    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10) as client:
        outbox = Outbox(data_dir / "alerting.db", clock=clock, settings=config.delivery)
        outbox.use_notifiers(
            build_notifiers(config, client=client, clock=clock, issue_index=outbox.issues)
        )
        dispatcher = Dispatcher(config, clock=clock, outbox=outbox)
        tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(outbox.run())]
        alerts = [Alert(Labels.of(alertname=f"A{i}"), {}, STARTS_AT) for i in range(groups)]
        await dispatcher.send(alerts)
        print("sent", flush=True)
        for _ in range(600):
            await asyncio.sleep(0.1)
            if not outbox.rows(RowState.PENDING):
                break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))

"""Every ``remote_write`` queue of one monitor: built from the config, run, stopped, shown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from soulwatch.clock import Clock
from soulwatch.remote.config import RemoteWriteConfig
from soulwatch.remote.metrics import RemoteMetrics
from soulwatch.remote.queue import Blocking, MetadataSource, RemoteWriteQueue, WalSource


class RemoteWriteManager:
    """The queues of ``configs``, reading ``source``'s WAL; cursors live in ``state_dir``.

    ``metadata`` gives the metric families whose ``# TYPE``/``# HELP``/``# UNIT``
    each queue with ``metadata_config.send`` sends every ``send_interval``.

    Building checks what can be checked before anything runs (secrets and TLS
    files readable) and raises :class:`~soulwatch.exceptions.ConfigError`;
    a receiver that cannot be reached shows in :meth:`status` and the logs.
    """

    def __init__(
        self,
        configs: list[RemoteWriteConfig],
        source: WalSource,
        *,
        state_dir: Path,
        external_labels: dict[str, str],
        clock: Clock,
        run_blocking: Blocking,
        registry: CollectorRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        metadata: MetadataSource | None = None,
    ) -> None:
        self._blocking = run_blocking
        self._metadata = metadata
        metrics = RemoteMetrics(registry) if configs else None
        self.queues: list[RemoteWriteQueue] = []
        for config in configs:
            assert metrics is not None
            self.queues.append(
                RemoteWriteQueue(
                    config,
                    source,
                    state_dir=state_dir,
                    external_labels=external_labels,
                    clock=clock,
                    metrics=metrics,
                    run_blocking=run_blocking,
                    transport=transport,
                )
            )

    async def run(self) -> None:
        """Open every queue and run them until cancelled."""
        for queue in self.queues:
            await self._blocking(queue.open)
        loops = [queue.run() for queue in self.queues]
        if self._metadata is not None:
            loops += [
                queue.run_metadata(self._metadata)
                for queue in self.queues
                if queue.config.metadata_config.send
            ]
        await asyncio.gather(*loops)

    async def close(self, flush_deadline: float = 4.0) -> None:
        """Flush every queue for up to ``flush_deadline`` seconds, together, then release the WAL.

        Called after :meth:`run` was cancelled and the sources stopped.
        """
        await asyncio.gather(*(queue.close(flush_deadline) for queue in self.queues))

    def status(self) -> list[dict[str, Any]]:
        """One entry per queue: where it is, what it sent, its last error."""
        return [queue.status().as_dict() for queue in self.queues]

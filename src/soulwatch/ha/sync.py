"""Silences and acknowledgements shared through Redis.

Whichever instance a user creates a silence or an acknowledgement on writes
it to Redis at its next tick (the store's change wakes the tick at once);
every instance takes what the others wrote. A silence is the same record
everywhere (same id), the newest ``updated_at`` wins; an acknowledgement
counts when it is newer than the one in force for its group.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from soulwatch.alerting.acks import Ack, AckStore
from soulwatch.alerting.silences import SilenceStore
from soulwatch.runner import BlockingRunner

#: At most this many records are read from one hash per tick (a bound on a bad Redis).
MAX_RECORDS = 50_000


class SharedStores:
    """Pushes local silences and acknowledgements to Redis and merges the peers'."""

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str,
        silences: SilenceStore,
        acks: AckStore | None,
        runner: BlockingRunner,
    ) -> None:
        self._client = client
        self._silences_key = f"{key_prefix}silences"
        self._acks_key = f"{key_prefix}acks"
        self._silences = silences
        self._acks = acks
        self._runner = runner
        # What was written already: rows changed after these times are pushed.
        self._silences_pushed = float("-inf")
        self._acks_pushed = float("-inf")

    async def sync(self, now: float) -> int:
        """Push what changed here, then take what peers wrote; returns how many were taken."""
        rows = await self._runner(self._silences.records, self._silences_pushed)
        if rows:
            await self._client.hset(
                self._silences_key, mapping={str(r[0]): json.dumps(list(r)) for r in rows}
            )
            self._silences_pushed = max(float(r[7]) for r in rows)
        taken = await self._take_silences(now)
        if self._acks is not None:
            acks = [a for a in self._acks.list() if a.at > self._acks_pushed]
            if acks:
                await self._client.hset(
                    self._acks_key,
                    mapping={a.group_key: json.dumps([a.by, a.comment, a.at]) for a in acks},
                )
                self._acks_pushed = max(a.at for a in acks)
            taken += await self._take_acks(self._acks)
        return taken

    async def _take_silences(self, now: float) -> int:
        raw: dict[Any, Any] = await self._client.hgetall(self._silences_key)
        rows: list[list[Any]] = []
        gone: list[Any] = []
        cutoff = now - self._silences.retention
        for key, value in list(raw.items())[:MAX_RECORDS]:
            try:
                row = json.loads(value)
                ended = float(row[3])
            except (ValueError, TypeError, IndexError, KeyError):
                gone.append(key)
                continue
            # Expired long ago: every instance forgets it, so Redis does too.
            (gone if ended < cutoff else rows).append(key if ended < cutoff else row)
        if gone:
            await self._client.hdel(self._silences_key, *gone)
        return await self._runner(self._silences.merge, rows) if rows else 0

    async def _take_acks(self, store: AckStore) -> int:
        raw: dict[Any, Any] = await self._client.hgetall(self._acks_key)
        acks: list[Ack] = []
        for key, value in list(raw.items())[:MAX_RECORDS]:
            try:
                by, comment, at = json.loads(value)
                group = key.decode() if isinstance(key, bytes) else str(key)
                acks.append(Ack(group, str(by), str(comment), float(at)))
            except (ValueError, TypeError):
                continue
        return await self._runner(store.merge, acks) if acks else 0

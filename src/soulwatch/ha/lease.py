"""The leader's lease in Redis, with a fencing token.

One key holds ``<token>|<instance>`` with a time to live; whoever set it
leads until it expires. The token comes from a counter that only grows
(``INCR``), so a later leader always holds a larger token than any earlier
one, and a leader that was paused past its lease finds, right before
sending, that the key no longer holds its value. Every operation is one Lua
script, so take-over, renewal and release are each atomic in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# Take the lease if nobody holds it. The counter is raised to at least the
# highest token this instance has seen, so a Redis that lost its data (a
# restart without persistence) does not hand out a token already used.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], token .. '|' .. ARGV[1], 'PX', ARGV[2])
return token
"""

# Extend the lease only while it still holds this instance's value.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Holder:
    """Who holds the lease: the fencing token and the instance."""

    token: int
    instance: str

    @classmethod
    def parse(cls, value: str) -> Holder | None:
        """The holder written in the lease key, ``None`` for anything else."""
        token, _, instance = value.partition("|")
        return cls(int(token), instance) if token.isdigit() and instance else None

    def value(self) -> str:
        """What the lease key holds for this holder."""
        return f"{self.token}|{self.instance}"


class Lease:
    """The lease of one instance: take it, renew it, check it, give it back.

    Redis errors (``redis.RedisError``, ``OSError``) reach the caller, which
    decides what an unreachable Redis means.
    """

    def __init__(self, client: Redis, *, key_prefix: str, instance: str, ttl: float) -> None:
        self._client = client
        self._key = f"{key_prefix}lease"
        self._fence = f"{key_prefix}fence"
        self._instance = instance
        self._ttl_ms = max(1, round(ttl * 1000))
        #: The lease this instance holds, if it holds one.
        self.held: Holder | None = None
        #: The highest fencing token seen (never handed out again, see _ACQUIRE).
        self.highest_token = 0

    async def acquire(self) -> Holder | None:
        """Take the lease if it is free; the new holder, or ``None`` when another leads."""
        token = int(
            await self._client.eval(
                _ACQUIRE,
                2,
                self._key,
                self._fence,
                self._instance,
                str(self._ttl_ms),
                str(self.highest_token),
            )
        )
        if token == 0:
            return None
        self.highest_token = max(self.highest_token, token)
        self.held = Holder(token, self._instance)
        return self.held

    async def renew(self) -> bool:
        """Extend the held lease; ``False`` (and no longer held) when it was lost."""
        if self.held is None:
            return False
        renewed = await self._client.eval(
            _RENEW, 1, self._key, self.held.value(), str(self._ttl_ms)
        )
        if not int(renewed):
            self.held = None
        return self.held is not None

    async def current(self) -> Holder | None:
        """Who holds the lease now (any instance)."""
        raw = await self._client.get(self._key)
        if raw is None:
            return None
        holder = Holder.parse(raw.decode() if isinstance(raw, bytes) else str(raw))
        if holder is not None:
            self.highest_token = max(self.highest_token, holder.token)
        return holder

    async def still_held(self) -> bool:
        """Whether this instance's token is still the one in Redis (checked before each send)."""
        if self.held is None:
            return False
        current = await self.current()
        if current != self.held:
            self.held = None
        return self.held is not None

    async def release(self) -> None:
        """Give the lease back (a clean stop), so the standby need not wait for it to expire."""
        if self.held is None:
            return
        await self._client.eval(_RELEASE, 1, self._key, self.held.value())
        self.held = None

"""Chaos: an HA pair whose instances are killed with ``kill -9`` at random moments.

Two real ``soulwatch run`` processes share a real redis-server and page one
recording webhook. A fault is switched on and off for a series of episodes;
within them either instance (the leader or the standby, at random) is killed
at a random moment of a random phase (pending, just after the page, firing,
resolving, idle) and started again. At the end every episode must have been
paged and resolved exactly once: nothing lost, nothing repeated while Redis
is up. The failover times (kill of the leader to the other leading) are
printed with the counts.

The seed is printed; ``SOULWATCH_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import dataclass, field

import pytest

from tests.alerting.run_support import MonitorProcess, Timing, pages
from tests.ha.pair_support import LEASE_TTL, Pair, World, ha_status, pair
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EPISODES = 15
MIN_KILLS = 30
PHASES = ("pending", "paged", "firing", "resolving", "idle")
TIMING = Timing(interval="1s", for_="0s", group_wait="0s", group_interval="1s")


@dataclass
class _Episode:
    on_at: float
    off_at: float = 0.0
    kills: list[str] = field(default_factory=list)


def _plan(rng: random.Random) -> list[list[str]]:
    """Phases of each episode that get a kill: every phase used, at least MIN_KILLS in all."""
    slots = [(i, p) for i in range(EPISODES) for p in PHASES]
    rng.shuffle(slots)
    chosen = [next(s for s in slots if s[1] == p) for p in PHASES]
    chosen += [s for s in slots if s not in chosen][: MIN_KILLS - len(chosen)]
    plan: list[list[str]] = [[] for _ in range(EPISODES)]
    for i, p in chosen:
        plan[i].append(p)
    return [sorted(kills, key=PHASES.index) for kills in plan]


class _Chaos:
    def __init__(self, both: Pair, rng: random.Random) -> None:
        self.both = both
        self.rng = rng
        self.failovers: list[float] = []
        self.kills = 0

    def kill(self, episode: _Episode, phase: str) -> None:
        """Kill one instance at random; time the failover when it led; start it again."""
        victim, other = self.rng.sample([self.both.a, self.both.b], 2)
        led = ha_status(victim)["mode"] == "leader"
        victim.kill9()
        killed = time.monotonic()
        self.kills += 1
        episode.kills.append(f"{phase}:{'leader' if led else 'standby'}")
        if led:
            wait_until(
                lambda: ha_status(other)["mode"] == "leader",
                timeout=3 * LEASE_TTL,
                interval=0.02,
                what="the survivor takes over",
            )
            self.failovers.append(time.monotonic() - killed)
        _restart(victim)


def _restart(proc: MonitorProcess) -> None:
    proc.start()
    wait_until(lambda: ha_status(proc)["mode"] == "standby", timeout=10, what="back as standby")


def _count(hook_pages: list[tuple[str, str, str, dict]], episodes: list[_Episode]) -> list[dict]:
    """Firing and resolved pages of each episode (by arrival, between its start and the next)."""
    ends = [e.on_at for e in episodes[1:]] + [float("inf")]
    out = []
    for e, end in zip(episodes, ends, strict=True):
        mine = [p for p in hook_pages if e.on_at <= p[3]["_at"] < end]
        out.append(
            {
                "firing": sum(1 for p in mine if p[0] == "firing"),
                "resolved": sum(1 for p in mine if p[0] == "resolved"),
            }
        )
    return out


def test_random_kill_9_of_either_instance_loses_no_page_and_repeats_none(world: World, capsys):
    seed = int(os.environ.get("SOULWATCH_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    plan = _plan(rng)
    episodes: list[_Episode] = []
    hook = world.hook

    def arrived(since: float, status: str) -> bool:
        return any(
            r.received_at >= since and r.json()["status"] == status for r in hook.received("/page")
        )

    with pair(world, TIMING) as both:
        chaos = _Chaos(both, rng)
        for kills in plan:
            episode = _Episode(on_at=time.time())
            episodes.append(episode)
            world.target.on = True
            if "pending" in kills:
                time.sleep(rng.uniform(0.0, 1.0))
                chaos.kill(episode, "pending")
            wait_until(lambda e=episode: arrived(e.on_at, "firing"), timeout=20, what="the page")
            if "paged" in kills:
                chaos.kill(episode, "paged")
            if "firing" in kills:
                time.sleep(rng.uniform(0.0, 2.0))
                chaos.kill(episode, "firing")
            episode.off_at = time.time()
            world.target.on = False
            if "resolving" in kills:
                time.sleep(rng.uniform(0.0, 1.0))
                chaos.kill(episode, "resolving")
            wait_until(
                lambda e=episode: arrived(e.off_at, "resolved"), timeout=20, what="the resolve"
            )
            if "idle" in kills:
                chaos.kill(episode, "idle")
            # Long enough for a late duplicate to arrive before the next episode starts.
            time.sleep(1.5 * LEASE_TTL)
        received = [
            (status, key, starts, {**body, "_at": r.received_at})
            for (status, key, starts, body), r in zip(
                pages(hook), hook.received("/page"), strict=True
            )
        ]
        counts = _count(received, episodes)
    lost = sum(1 for c in counts if c["firing"] == 0) + sum(1 for c in counts if c["resolved"] == 0)
    duplicates = sum(max(0, c["firing"] - 1) + max(0, c["resolved"] - 1) for c in counts)
    fo = chaos.failovers
    with capsys.disabled():
        print(
            f"\nHA chaos seed={seed} episodes={len(episodes)} kills={chaos.kills} "
            f"pages={sum(c['firing'] for c in counts)} "
            f"resolves={sum(c['resolved'] for c in counts)} lost={lost} duplicates={duplicates} "
            f"failovers={len(fo)} median={statistics.median(fo) if fo else 0:.2f}s "
            f"max={max(fo, default=0):.2f}s (lease {LEASE_TTL:g}s)"
        )
        for e, c in zip(episodes, counts, strict=True):
            if c != {"firing": 1, "resolved": 1}:
                print(f"  episode at {e.on_at:.1f}: {c} kills={e.kills}")
                for status, key, starts, body in received:
                    if e.on_at <= body["_at"] < e.on_at + 30:
                        print(f"    {body['_at'] - e.on_at:6.2f}s {status} {starts} {key}")
        if lost or duplicates:
            print(f"  logs: {world.tmp / 'a.log'} {world.tmp / 'b.log'}")
    assert chaos.kills >= MIN_KILLS
    assert lost == 0
    assert duplicates == 0

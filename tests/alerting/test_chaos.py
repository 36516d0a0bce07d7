"""Chaos: a real ``soulwatch run`` killed with ``kill -9`` at random moments, many times.

A scrape target's fault is switched on and off for a series of episodes; the
rule pages on it through a recording webhook. Between and within episodes the
monitor is killed with ``kill -9`` at a random moment of a random phase
(pending, firing, delivering, resolving, idle) and started again on the same
data directory. At the end every episode must have been paged and resolved
(nothing lost), and every notification received more than once must carry
the idempotency key of the notification it repeats (at-least-once, never a
new key for a redelivery).

The seed is printed; ``SOULWATCH_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from tests.alerting.run_support import (
    FaultTarget,
    MonitorProcess,
    Timing,
    pages,
    receiver,
    write_config,
)
from tests.helpers import Recorder, wait_until

pytestmark = pytest.mark.slow

EPISODES = 20
MIN_KILLS = 30
PHASES = ("pending", "firing", "delivering", "resolving", "idle")
TIMING = Timing(interval="1s", for_="1s", group_wait="0s", group_interval="2s")


@dataclass
class _Episode:
    on_at: float
    off_at: float = 0.0
    kills: list[str] = field(default_factory=list)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _paged_since(hook: Recorder, t: float) -> bool:
    return any(p[0] == "firing" and _epoch(p[2]) >= t - 1 for p in pages(hook))


def _kill_plan(rng: random.Random) -> list[set[str]]:
    """Which phases of which episode get a kill: at least MIN_KILLS in all, every phase used."""
    plan: list[set[str]] = [set() for _ in range(EPISODES)]
    slots = [(i, phase) for i in range(EPISODES) for phase in PHASES]
    rng.shuffle(slots)
    chosen = [next(slot for slot in slots if slot[1] == phase) for phase in PHASES]
    chosen += [slot for slot in slots if slot not in chosen][: MIN_KILLS + 2 - len(chosen)]
    for i, phase in chosen:
        plan[i].add(phase)
    return plan


def test_kill_9_at_random_moments_loses_no_page_and_no_resolve(tmp_path, capsys):
    seed = int(os.environ.get("SOULWATCH_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    plan = _kill_plan(rng)
    episodes: list[_Episode] = []
    with FaultTarget() as target, receiver() as hook:
        config = write_config(
            tmp_path, target.address, hook.url, data_dir=tmp_path / "data", timing=TIMING
        )
        proc = MonitorProcess(config)

        def kill_and_restart(episode: _Episode, phase: str, within: float) -> None:
            time.sleep(rng.uniform(0, within))
            proc.kill9()
            episode.kills.append(phase)
            proc.start()

        try:
            proc.start()
            for i in range(EPISODES):
                kills = plan[i]
                episode = _Episode(on_at=time.time())
                episodes.append(episode)
                target.on = True
                if "pending" in kills:  # before the rule has fired
                    kill_and_restart(episode, "pending", 1.5)
                wait_until(proc.firing, timeout=30, what=f"episode {i} firing")
                if "firing" in kills:  # fired, the page on its way
                    kill_and_restart(episode, "firing", 1.0)
                paged = functools.partial(_paged_since, hook, episode.on_at)
                wait_until(paged, timeout=30, what=f"episode {i} paged")
                if "delivering" in kills:  # the page has just been received
                    kill_and_restart(episode, "delivering", 0.3)
                target.on = False
                episode.off_at = time.time()
                if "resolving" in kills:  # resolved, the resolve waiting for its group
                    kill_and_restart(episode, "resolving", 3.0)
                wait_until(lambda: not proc.firing(), timeout=30, what=f"episode {i} resolved")
                if "idle" in kills:
                    kill_and_restart(episode, "idle", 2.0)
                time.sleep(rng.uniform(0.2, 1.5))
            # Let every resolve arrive (each goes out at its group's next tick).
            wait_until(
                lambda: sum(p[0] == "resolved" for p in pages(hook)) >= EPISODES,
                timeout=60,
                what="every resolve",
            )
            time.sleep(3)
        finally:
            proc.stop()

    received = pages(hook)
    by_episode: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for status, key, starts, _ in received:
        by_episode[starts][status].append(key)
    lost: list[str] = []
    for i, episode in enumerate(episodes):
        mine = [s for s in by_episode if episode.on_at - 1 <= _epoch(s) <= episode.off_at + 1]
        if not any(by_episode[s]["firing"] for s in mine):
            lost.append(f"episode {i}: no page")
        if not any(by_episode[s]["resolved"] for s in mine):
            lost.append(f"episode {i}: no resolve")
    duplicates = [
        (starts, status, keys)
        for starts, statuses in by_episode.items()
        for status, keys in statuses.items()
        if len(keys) > 1
    ]
    kills = sum(len(e.kills) for e in episodes)
    with capsys.disabled():  # the counts are the point of this test: always shown
        print(
            f"\nchaos seed={seed}: episodes={len(episodes)} kills={kills}"
            f" pages={sum(p[0] == 'firing' for p in received)}"
            f" resolves={sum(p[0] == 'resolved' for p in received)}"
            f" lost={len(lost)} duplicates={sum(len(k) - 1 for *_, k in duplicates)}"
        )
        for starts, status, keys in duplicates:
            print(f"  duplicate {status} of the episode started {starts}: keys {keys}")
    phases = {phase for e in episodes for phase in e.kills}
    assert kills >= MIN_KILLS, f"seed {seed}"
    assert phases == set(PHASES), f"seed {seed}"
    assert lost == [], f"seed {seed}: {lost}"
    assert all(len(set(keys)) == 1 for *_, keys in duplicates), (
        f"seed {seed}: a redelivery carries the key of the notification it repeats: {duplicates}"
    )
    paged_episodes = [s for s, statuses in by_episode.items() if statuses["firing"]]
    assert len(paged_episodes) == EPISODES, f"seed {seed}: one paged episode per fault episode"

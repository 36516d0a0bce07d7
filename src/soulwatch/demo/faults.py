"""The faults the demo can inject into its sample platform, and their switches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Live switches read by the sample backend, runner and poller on every request or tick.

    The demo flips them to inject a fault and flips them back to remove it.
    """

    #: Fraction of backend requests answered with HTTP 500.
    error_rate: float = 0.0
    #: Seconds added to every backend request (real seconds: the SDK times real requests).
    extra_latency: float = 0.0
    #: Fraction of agent jobs that fail.
    agent_failure_rate: float = 0.05
    #: The runner stops picking up jobs: new ones stay ``pending``.
    runner_stalled: bool = False
    #: The runner keeps one job ``running`` forever (a sandbox that never returns).
    hung_job: bool = False
    #: The Reddit poller stops ingesting and stops sending heartbeats.
    poller_stalled: bool = False
    #: The dashboard's pages paint their largest content after 3 to 4 seconds.
    slow_pages: bool = False
    #: Half of the dashboard's page loads crash into its error boundary.
    crash_loop: bool = False

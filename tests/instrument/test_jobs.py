"""Job tracking for the agent runner, on the simulated clock."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import FailureCategory, JobTracker, Outcome, track_job
from tests.instrument.metrics_text import label_values, value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


async def test_lifecycle_metrics_have_the_documented_names(
    registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    jobs = JobTracker(registry=registry, clock=clock)
    t0 = clock.time()
    jobs.start("job-1")
    await clock.advance(60)
    jobs.start("job-2")
    text = _text(registry)
    assert value(text, "agent_jobs_started_total") == 2
    assert value(text, "agent_jobs_running") == 2
    assert value(text, "agent_job_oldest_running_start_timestamp_seconds") == t0

    await clock.advance(1000)  # job-1 has run 1060 s: past the 15 min rule
    jobs.finish("job-1", Outcome.FAILURE, FailureCategory.SANDBOX_TIMEOUT)
    text = _text(registry)
    assert (
        value(text, "agent_jobs_finished_total", outcome="failure", category="sandbox_timeout") == 1
    )
    assert value(text, "agent_job_oldest_running_start_timestamp_seconds") == t0 + 60
    assert value(text, "agent_job_duration_seconds_bucket", le="900.0") == 0
    assert value(text, "agent_job_duration_seconds_bucket", le="1200.0") == 1
    assert value(text, "agent_job_duration_seconds_sum") == 1060

    jobs.finish("job-2")
    text = _text(registry)
    assert value(text, "agent_jobs_finished_total", outcome="success", category="none") == 1
    assert value(text, "agent_jobs_running") == 0
    # Nothing runs: +Inf, so "time() - oldest > 900" cannot fire.
    assert value(text, "agent_job_oldest_running_start_timestamp_seconds") == math.inf


def test_buckets_reach_beyond_15_minutes(registry: CollectorRegistry) -> None:
    JobTracker(registry=registry)
    les = label_values(_text(registry), "agent_job_duration_seconds_bucket", "le")
    assert "900.0" in les
    assert max(float(le) for le in les if le != "+Inf") > 900


def test_context_manager_records_success_failure_and_explicit_categories(
    registry: CollectorRegistry,
) -> None:
    jobs = JobTracker(registry=registry)
    with jobs.track("ok"):
        pass
    with pytest.raises(RuntimeError), jobs.track("crash"):
        raise RuntimeError("sandbox died")
    with jobs.track("lint") as run:
        run.fail(FailureCategory.LINTER_ERROR)
    with jobs.track("pr") as run:
        run.category = "pr_creation_failed"
    text = _text(registry)
    assert value(text, "agent_jobs_finished_total", outcome="success", category="none") == 1
    assert value(text, "agent_jobs_finished_total", outcome="failure", category="other") == 1
    assert value(text, "agent_jobs_finished_total", outcome="failure", category="linter_error") == 1
    assert (
        value(text, "agent_jobs_finished_total", outcome="failure", category="pr_creation_failed")
        == 1
    )
    assert value(text, "agent_jobs_running") == 0


def test_categories_are_extensible_and_unknown_ones_stay_bounded(
    registry: CollectorRegistry,
) -> None:
    jobs = JobTracker(registry=registry, categories=["github_auth_required"])
    jobs.start("a")
    jobs.finish("a", "failure", "github_auth_required")
    jobs.start("b")
    jobs.finish("b", "failure", "Agent script exited with code 137 at /tmp/x")
    text = _text(registry)
    assert label_values(text, "agent_jobs_finished_total", "category") == {
        "github_auth_required",
        "other",
    }
    with pytest.raises(ValueError, match="failure category"):
        jobs.register_category("Not A Label")


def test_other_kinds_get_their_own_prefix_and_the_shared_tracker_is_reused(
    registry: CollectorRegistry,
) -> None:
    with track_job("c1", kind="cluster", registry=registry):
        pass
    with track_job("c2", kind="cluster", registry=registry):
        pass
    assert value(_text(registry), "cluster_jobs_started_total") == 2
    with pytest.raises(ValueError, match="job kind"):
        JobTracker("Agent Jobs", registry=registry)


def test_a_second_start_of_a_running_job_is_not_double_counted(registry: CollectorRegistry) -> None:
    jobs = JobTracker(registry=registry)
    jobs.start("x")
    jobs.start("x")
    assert value(_text(registry), "agent_jobs_started_total") == 1
    assert value(_text(registry), "agent_jobs_running") == 1

"""Relabeling as Prometheus does it."""

from __future__ import annotations

from soulwatch.sources.scrape.config import RelabelConfig
from soulwatch.sources.scrape.relabel import Relabeler


def run(labels: dict[str, str], *configs: dict[str, object]) -> dict[str, str] | None:
    return Relabeler([RelabelConfig.model_validate(c) for c in configs]).process(labels)


def test_keep_and_drop_are_fully_anchored() -> None:
    series = {"__name__": "http_requests_total", "code": "500"}
    assert run(series, {"source_labels": ["code"], "regex": "5..", "action": "keep"}) == series
    assert run(series, {"source_labels": ["code"], "regex": "5", "action": "keep"}) is None
    assert run(series, {"source_labels": ["code"], "regex": "5..", "action": "drop"}) is None


def test_replace_with_groups_separator_and_empty_result() -> None:
    series = {"__name__": "m", "a": "x", "b": "y", "gone": "z"}
    out = run(
        series,
        {
            "source_labels": ["a", "b"],
            "regex": "(.*);(.*)",
            "target_label": "ab",
            "replacement": "${2}-$1",
        },
        {"source_labels": ["nothing"], "regex": "", "target_label": "gone", "replacement": ""},
        {"source_labels": ["a"], "regex": "nomatch", "target_label": "a", "replacement": "q"},
    )
    assert out == {"__name__": "m", "a": "x", "b": "y", "ab": "y-x"}


def test_labeldrop_labelkeep_labelmap_case() -> None:
    series = {"__name__": "m", "pod_uid": "1", "pod_name": "p", "ns": "n"}
    assert run(series, {"regex": "pod_.*", "action": "labeldrop"}) == {"__name__": "m", "ns": "n"}
    assert run(series, {"regex": "__name__|ns", "action": "labelkeep"}) == {
        "__name__": "m",
        "ns": "n",
    }
    mapped = run(series, {"regex": "pod_(.*)", "replacement": "k8s_$1", "action": "labelmap"})
    assert mapped is not None
    assert mapped["k8s_name"] == "p"
    assert run(
        {"a": "AbC"}, {"source_labels": ["a"], "target_label": "b", "action": "lowercase"}
    ) == {
        "a": "AbC",
        "b": "abc",
    }


def test_hashmod_is_stable_and_in_range() -> None:
    cfg = {"source_labels": ["i"], "target_label": "shard", "modulus": 4, "action": "hashmod"}
    shards = {(run({"i": str(i)}, cfg) or {})["shard"] for i in range(50)}
    assert shards <= {"0", "1", "2", "3"}
    assert len(shards) > 1
    assert run({"i": "7"}, cfg) == run({"i": "7"}, cfg)

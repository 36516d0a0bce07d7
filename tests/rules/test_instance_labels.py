"""Alert instances' labels reused between evaluations give what building them afresh gives.

An alerting rule whose labels are plain text reuses the instance labels of
the last evaluation's samples. Random evaluations (samples coming and
going, rule labels that override or remove a sample's label, a rule label
with a template action) are applied to one long-lived rule state and, each
time, to a fresh one: the instances' labels, annotations and the ``ALERTS``
series must be the same.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from soulwatch.promql.values import Sample
from soulwatch.rules.model import Position, RuleKind, RuleSpec
from soulwatch.rules.state import AlertingRuleState
from soulwatch.tsdb.model import Labels

_HERE = Position("rules.yml", 1, 1)

#: Some samples carry their own ``severity`` (always the same for an instance,
#: so a rule's override makes no two samples alike); the name goes.
_sample_labels = st.builds(
    lambda job, inst: Labels.of(
        __name__="up", job=job, instance=inst, **({"severity": "low"} if inst < "i3" else {})
    ),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["i1", "i2", "i3", "i4"]),
)
#: Values on both sides of the action's threshold (5).
_evaluation = st.dictionaries(_sample_labels, st.sampled_from([1.0, 2.5, 7.0, 9.0]), max_size=6)
_rule_labels = st.sampled_from(
    [
        {},
        {"severity": "page"},  # overrides the sample's own
        {"severity": ""},  # removes it
        {"team": "core", "env": "staging"},  # overrides the group label
        {"severity": "{{ if gt $value 5.0 }}page{{ else }}ticket{{ end }}"},  # an action
        {"where": "{{ $labels.instance }}"},
    ]
)


def _state(labels: dict[str, str]) -> AlertingRuleState:
    spec = RuleSpec(
        kind=RuleKind.ALERT,
        name="Bad",
        expr="up == 0",
        position=_HERE,
        expr_position=_HERE,
        labels=labels,
        annotations={"summary": "{{ $labels.instance }} at {{ $value }}"},
    )
    return AlertingRuleState(spec=spec, key="rules.yml;g;Bad", group_labels={"env": "prod"})


@settings(max_examples=120, deadline=None)
@given(labels=_rule_labels, evaluations=st.lists(_evaluation, min_size=1, max_size=6))
def test_reused_instance_labels_match_labels_built_afresh(
    labels: dict[str, str], evaluations: list[dict[Labels, float]]
) -> None:
    kept = _state(labels)
    for step, samples in enumerate(evaluations):
        ts = 1000.0 + 15 * step
        vector = [Sample(lbls, int(ts * 1000), value) for lbls, value in samples.items()]
        fresh = _state(labels)
        got = kept._instances(vector, ts)
        want = fresh._instances(vector, ts)
        assert {str(k): (v.annotations, v.value) for k, v in got.items()} == {
            str(k): (v.annotations, v.value) for k, v in want.items()
        }
        assert list(got) == list(want)
        kept.evaluate(vector, ts)
        assert all(lbls.get("__name__") == "" for lbls in kept.active)

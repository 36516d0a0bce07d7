"""Dropping the metric name after a function: any label names, the same labels as a rebuild."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.stepvec import StepSeries, finalize_names
from soulwatch.tsdb.model import Labels

# Names sorting before and after "__name__" ("A", "_A", "_a", "a"), and the name itself.
_names = st.sampled_from(["__name__", "A", "Z", "_A", "_a", "__a", "a", "job", "le"])
_label_sets = st.dictionaries(_names, st.sampled_from(["x", "y", "1"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    sets=st.lists(
        _label_sets, min_size=1, max_size=6, unique_by=lambda d: tuple(sorted(d.items()))
    ),
    drops=st.lists(st.booleans()),
)
def test_dropping_the_name_gives_the_labels_without_it_or_the_duplicate_error(
    sets: list[dict[str, str]], drops: list[bool]
) -> None:
    series = [
        StepSeries(Labels.of(d), [float(i)], drops[i] if i < len(drops) else True)
        for i, d in enumerate(sets)
    ]
    want = [s.labels.without("__name__") if s.drop_name else s.labels for s in series]
    if len(set(want)) < len(want):
        # Two series with one labelset at the same step: Prometheus's error.
        with pytest.raises(EvaluationError, match="same labelset"):
            finalize_names(series)
        return
    got = finalize_names(series)
    assert [tuple(s.labels) for s in got] == [tuple(w) for w in want]
    assert all(type(s.labels) is Labels and not s.drop_name for s in got)
    assert [s.vals for s in got] == [s.vals for s in series]

"""Prometheus rule files: loading, evaluation, alert state, unit tests.

* :mod:`~soulwatch.rules.loader` / :mod:`~soulwatch.rules.model`: rule files
  with ``file:line:col`` errors;
* :mod:`~soulwatch.rules.templates`: the Go-template subset of labels and
  annotations (:mod:`~soulwatch.rules.gofmt` prints values as Go does);
* :mod:`~soulwatch.rules.state`: the alert state machine of one rule;
* :mod:`~soulwatch.rules.group` / :mod:`~soulwatch.rules.evaluator`: groups
  on their intervals, recording results, ``ALERTS``, sending to an
  :class:`~soulwatch.alerts.AlertSink` (:class:`RuleManager`);
* :mod:`~soulwatch.rules.store`: alert state and transitions in SQLite;
* :mod:`~soulwatch.rules.unittest`: ``promtool test rules``-format tests;
* :mod:`~soulwatch.rules.config`: :class:`RulesConfig`.

Nothing is imported here, so ``soulwatch.rules.loader`` works without the
PromQL engine.
"""

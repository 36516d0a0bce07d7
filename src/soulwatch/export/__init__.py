"""Leaving soulwatch: its configuration written out for other engines.

:func:`~soulwatch.export.prometheus.export_prometheus` writes a
``prometheus.yml``, the rule files and an ``alertmanager.yml`` that load
unchanged in Prometheus 2.42 and Alertmanager 0.25 (``soulwatch export
prometheus``).
"""

from soulwatch.export.prometheus import ExportResult, export_prometheus

__all__ = ["ExportResult", "export_prometheus"]

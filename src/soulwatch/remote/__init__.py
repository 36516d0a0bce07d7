"""Sending soulwatch's samples to engines that scale: Prometheus remote write 1.0.

``remote_write:`` in soulwatch.yaml (prometheus.yml's schema) makes
:class:`~soulwatch.remote.manager.RemoteWriteManager` follow the TSDB's
write-ahead log and send every committed sample to each URL, durably.
"""

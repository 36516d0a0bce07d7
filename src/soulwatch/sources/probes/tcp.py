"""The TCP connect probe (blackbox_exporter's ``tcp`` prober, without query/response)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from soulwatch.sources.probes.base import ProbeResult, Timer
from soulwatch.sources.probes.config import TCPProbe
from soulwatch.sources.probes.http import cert_expiry
from soulwatch.sources.scrape.manager import ssl_context


class TCPProber:
    """Connects to ``host:port`` (optionally completing TLS) and closes."""

    def __init__(self, config: TCPProbe, *, timer: Timer = time.perf_counter) -> None:
        self.config = config
        self._timer = timer

    async def probe(self, target: str, result: ProbeResult) -> None:
        """Open and close one connection to ``target`` (``host:port``)."""
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            result.error = f"target {target!r} is not host:port"
            return
        t0 = self._timer()
        try:
            await asyncio.get_running_loop().getaddrinfo(host, int(port))
        except OSError as exc:
            result.error = f"resolving {host!r}: {exc}"
            return
        result.add("probe_dns_lookup_time_seconds", self._timer() - t0)
        ctx = ssl_context(self.config.tls_config) if self.config.tls else None
        server_hostname = (
            self.config.tls_config.server_name if self.config.tls_config else None
        ) or (host if ctx else None)
        try:
            _reader, writer = await asyncio.open_connection(
                host, int(port), ssl=ctx, server_hostname=server_hostname
            )
        except OSError as exc:  # includes ssl.SSLError
            result.error = f"{type(exc).__name__}: {exc}"
            return
        try:
            if ctx is not None:
                expiry = cert_expiry(writer.get_extra_info("ssl_object"))
                if expiry is not None:
                    result.add("probe_ssl_earliest_cert_expiry", expiry)
            result.success = True
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        """Nothing to release."""

"""The HTTP probe, with blackbox_exporter's metric names and semantics.

Writes ``probe_http_status_code`` (0 when no response), ``probe_http_content_length``
(-1 when unknown), ``probe_http_uncompressed_body_length``, ``probe_http_redirects``,
``probe_http_ssl``, ``probe_http_version``, ``probe_failed_due_to_regex``,
``probe_http_duration_seconds{phase}`` for ``resolve``, ``connect``, ``tls``,
``processing`` and ``transfer`` (summed over redirects), and
``probe_ssl_earliest_cert_expiry`` for HTTPS.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from soulwatch.sources.probes.base import ProbeResult, Timer
from soulwatch.sources.probes.config import HTTPProbe
from soulwatch.sources.scrape.manager import ssl_context

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
_TRACE_PHASES = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
    "http11.receive_response_body": "transfer",
}


def _json_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise KeyError(path)
    return doc


def cert_expiry(ssl_object: ssl.SSLObject | None) -> float | None:
    """The earliest ``notAfter`` (Unix seconds) of the peer's verified chain, or of its leaf."""
    if ssl_object is None:
        return None
    times: list[float] = []
    chain_getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if chain_getter is not None:
        try:
            for cert in chain_getter() or []:
                not_after = cert.get_info().get("notAfter")
                if not_after:
                    times.append(ssl.cert_time_to_seconds(not_after))
        except (ssl.SSLError, AttributeError, ValueError):
            times = []
    if not times:
        leaf = ssl_object.getpeercert()
        if leaf and leaf.get("notAfter"):
            times.append(ssl.cert_time_to_seconds(str(leaf["notAfter"])))
    return min(times) if times else None


class HTTPProber:
    """Probes a URL with one ``httpx.AsyncClient`` (transport injectable)."""

    def __init__(
        self,
        config: HTTPProbe,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timer: Timer = time.perf_counter,
    ) -> None:
        self.config = config
        self._timer = timer
        verify: ssl.SSLContext | bool = ssl_context(config.tls_config)
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=verify,
            follow_redirects=config.follow_redirects,
            trust_env=False,
            timeout=None,  # the probe's own timeout bounds the whole run
        )
        self._regex_bad = [re.compile(p) for p in config.fail_if_body_matches_regexp]
        self._regex_need = [re.compile(p) for p in config.fail_if_body_not_matches_regexp]

    async def probe(self, target: str, result: ProbeResult) -> None:
        """Request ``target`` and judge the answer."""
        cfg = self.config
        phases = dict.fromkeys(PHASES, 0.0)
        started: dict[str, float] = {}
        timer = self._timer

        async def trace(event: str, info: dict[str, Any]) -> None:
            prefix, _, stage = event.rpartition(".")
            phase = _TRACE_PHASES.get(prefix)
            if event == "http11.send_request_headers.started":
                started["processing"] = timer()
            elif event == "http11.receive_response_headers.complete" and "processing" in started:
                phases["processing"] += timer() - started.pop("processing")
            elif phase is not None:
                if stage == "started":
                    started[phase] = timer()
                elif stage in ("complete", "failed") and phase in started:
                    phases[phase] += timer() - started.pop(phase)

        def finish() -> None:
            for phase in PHASES:
                result.add("probe_http_duration_seconds", phases[phase], phase=phase)

        url = urlsplit(target)
        status = 0
        result.add("probe_http_status_code", 0)  # replaced once a response arrives
        try:
            t0 = timer()
            await asyncio.get_running_loop().getaddrinfo(
                url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
            )
            phases["resolve"] = timer() - t0
            result.add("probe_dns_lookup_time_seconds", phases["resolve"])
            request = self._client.build_request(
                cfg.method, target, headers=cfg.headers, content=cfg.body
            )
            request.extensions["trace"] = trace
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read(response)
            finally:
                await response.aclose()
        except (httpx.HTTPError, OSError) as exc:
            finish()
            result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return
        except _TooLarge as exc:
            finish()
            result.error = str(exc)
            return
        finish()
        status = response.status_code
        result.metrics[0] = ("probe_http_status_code", {}, float(status))
        length = response.headers.get("content-length")
        result.add(
            "probe_http_content_length", float(length) if length and length.isdigit() else -1
        )
        result.add("probe_http_uncompressed_body_length", len(body))
        result.add("probe_http_redirects", len(response.history))
        is_ssl = response.url.scheme == "https"
        result.add("probe_http_ssl", 1 if is_ssl else 0)
        version = response.http_version.removeprefix("HTTP/")
        result.add(
            "probe_http_version", float(version) if version.replace(".", "").isdigit() else 0
        )
        if is_ssl:
            stream = response.extensions.get("network_stream")
            expiry = cert_expiry(stream.get_extra_info("ssl_object") if stream else None)
            if expiry is not None:
                result.add("probe_ssl_earliest_cert_expiry", expiry)
        result.success, result.error = self._judge(status, is_ssl, body, result)

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self.config.body_size_limit
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _TooLarge(f"body size limit exceeded (more than {limit} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _judge(
        self, status: int, is_ssl: bool, body: bytes, result: ProbeResult
    ) -> tuple[bool, str]:
        cfg = self.config
        valid = status in cfg.valid_status_codes if cfg.valid_status_codes else 200 <= status < 300
        if not valid:
            return False, f"invalid HTTP status {status}"
        if cfg.fail_if_ssl and is_ssl:
            return False, "final request was over SSL"
        if cfg.fail_if_not_ssl and not is_ssl:
            return False, "final request was not over SSL"
        if self._regex_bad or self._regex_need:
            text = body.decode("utf-8", "replace")
            for regex in self._regex_bad:
                if regex.search(text):
                    result.add("probe_failed_due_to_regex", 1)
                    return False, f"body matched regular expression {regex.pattern!r}"
            for regex in self._regex_need:
                if not regex.search(text):
                    result.add("probe_failed_due_to_regex", 1)
                    return False, f"body did not match regular expression {regex.pattern!r}"
            result.add("probe_failed_due_to_regex", 0)
        if cfg.json_fields:
            try:
                doc = json.loads(body)
            except ValueError:
                result.add("probe_failed_due_to_json", 1)
                return False, "body is not valid JSON"
            for path, expected in cfg.json_fields.items():
                try:
                    actual = _json_path(doc, path)
                except KeyError:
                    result.add("probe_failed_due_to_json", 1)
                    return False, f"JSON field {path!r} is missing"
                if actual != expected:
                    result.add("probe_failed_due_to_json", 1)
                    return False, f"JSON field {path!r} is {actual!r}, expected {expected!r}"
            result.add("probe_failed_due_to_json", 0)
        return True, ""

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class _TooLarge(Exception):
    pass

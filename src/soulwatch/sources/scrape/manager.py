"""The scrape manager: targets from ``scrape_configs``, one loop each, one HTTP client per job."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx

from soulwatch.clock import Clock
from soulwatch.exceptions import ConfigError
from soulwatch.sources.base import Scheduler
from soulwatch.sources.scrape.config import ScrapeConfig, TLSConfig
from soulwatch.sources.scrape.relabel import Relabeler
from soulwatch.sources.scrape.target import ScrapeTarget, TargetStatus
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage


def target_labels(
    config: ScrapeConfig, address: str, group_labels: Mapping[str, str]
) -> tuple[str, Labels] | None:
    """The URL and labels of one static target, as Prometheus builds them; ``None`` if dropped.

    The group's labels come first, then the job's defaults fill what is unset
    (``job``, ``__scheme__``, ``__metrics_path__``, ``__param_*``); then
    ``relabel_configs`` run, ``instance`` defaults to the address and labels
    starting with ``__`` are removed.
    """
    lb: dict[str, str] = {"__address__": address, **group_labels}
    defaults = {
        "job": config.job_name,
        "__scheme__": config.scheme,
        "__metrics_path__": config.metrics_path,
        "__scrape_interval__": f"{config.interval:g}s",
        "__scrape_timeout__": f"{config.timeout:g}s",
    }
    for name, values in config.params.items():
        if values:
            defaults[f"__param_{name}"] = values[0]
    for name, value in defaults.items():
        if lb.get(name, "") == "":
            lb[name] = value
    if config.relabel_configs:
        relabeled = Relabeler(config.relabel_configs).process(lb)
        if relabeled is None:
            return None
        lb = relabeled
    addr = lb.get("__address__", "")
    if not addr:
        raise ConfigError(f"job {config.job_name!r}: target {address!r} has no __address__")
    if "/" in addr:
        raise ConfigError(f"job {config.job_name!r}: {addr!r} is not a host:port address")
    lb.setdefault("instance", addr)
    params: list[tuple[str, str]] = []
    for name, values in config.params.items():
        override = lb.get(f"__param_{name}")
        if override is not None:
            params.append((name, override))
            params.extend((name, v) for v in values[1:])
        else:
            params.extend((name, v) for v in values)
    for name, value in lb.items():
        if name.startswith("__param_") and name[8:] not in config.params:
            params.append((name[8:], value))
    url = f"{lb.get('__scheme__', 'http')}://{addr}{lb.get('__metrics_path__', '/metrics')}"
    if params:
        url += "?" + urlencode(params)
    return url, Labels((n, v) for n, v in lb.items() if not n.startswith("__"))


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None


def _auth_headers(config: ScrapeConfig) -> dict[str, str]:
    if config.bearer_token is not None:
        return {"Authorization": f"Bearer {config.bearer_token}"}
    if config.bearer_token_file is not None:
        token = _read_secret(config.bearer_token_file, "bearer_token_file")
        return {"Authorization": f"Bearer {token}"}
    auth = config.authorization
    if auth is not None:
        creds = auth.credentials
        if auth.credentials_file is not None:
            creds = _read_secret(auth.credentials_file, "authorization credentials_file")
        return {"Authorization": f"{auth.type} {creds or ''}".strip()}
    return {}


def ssl_context(tls: TLSConfig | None) -> ssl.SSLContext:
    """An SSL context for ``tls_config`` (system CAs when no ``ca_file``)."""
    ctx = ssl.create_default_context(cafile=tls.ca_file if tls else None)
    if tls is not None:
        if tls.cert_file and tls.key_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ScrapeManager:
    """Scrapes every target of ``configs`` into ``storage`` on ``clock``.

    ``transport`` replaces the HTTP transport of every job's client (tests,
    proxies); configs should already be :meth:`ScrapeConfig.resolved`.
    """

    def __init__(
        self,
        configs: Sequence[ScrapeConfig],
        storage: Storage,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
        offload: bool = True,
    ) -> None:
        self._clients: list[httpx.AsyncClient] = []
        self._lock = threading.Lock()
        self.targets: list[ScrapeTarget] = []
        seen: set[tuple[str, Labels]] = set()
        for config in configs:
            client = self._client(config, transport)
            self._clients.append(client)
            headers = {**config.header_values(), **_auth_headers(config)}
            for group in config.static_configs:
                for address in group.targets:
                    built = target_labels(config, address, group.labels)
                    if built is None:
                        continue
                    url, labels = built
                    if (url, labels) in seen:
                        continue  # the same target listed twice is scraped once, as in Prometheus
                    seen.add((url, labels))
                    self.targets.append(
                        ScrapeTarget(
                            config,
                            url,
                            labels,
                            storage=storage,
                            client=client,
                            clock=clock,
                            headers=headers,
                            write_lock=self._lock,
                            offload=offload,
                        )
                    )
        self._scheduler = Scheduler(clock, self.targets, seed=seed)

    @staticmethod
    def _client(
        config: ScrapeConfig, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        auth = None
        if config.basic_auth is not None:
            password = config.basic_auth.password or ""
            if config.basic_auth.password_file:
                password = _read_secret(config.basic_auth.password_file, "password_file")
            auth = httpx.BasicAuth(config.basic_auth.username, password)
        verify: ssl.SSLContext | bool = True
        if config.scheme == "https" or config.tls_config is not None:
            verify = ssl_context(config.tls_config)
        return httpx.AsyncClient(
            transport=transport,
            auth=auth,
            verify=verify,
            timeout=config.timeout,
            follow_redirects=config.follow_redirects,
            trust_env=False,
        )

    def start(self) -> None:
        """Start one scrape loop per target."""
        self._scheduler.start()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until no scrape is in flight (for tests and shutdown)."""
        await self._scheduler.settled(timeout)

    async def stop(self) -> None:
        """Stop every loop, write staleness markers for every target, close the clients."""
        await self._scheduler.stop()
        for client in self._clients:
            await client.aclose()

    def statuses(self) -> list[TargetStatus]:
        """The status of every target, in config order."""
        return [t.status for t in self.targets]

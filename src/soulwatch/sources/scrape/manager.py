"""The scrape manager: targets from ``scrape_configs``, one loop each, one HTTP client per job."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from soulwatch.clock import Clock
from soulwatch.exceptions import ConfigError
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.base import Scheduler
from soulwatch.sources.jobs import JobReload, JobSet
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
    if "@" in addr:
        # Relabeling produced it: refuse rather than put credentials in ``instance``.
        raise ConfigError(
            f"job {config.job_name!r}: a target address has credentials in it; "
            "use basic_auth or authorization on the job"
        )
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


def _password(config: ScrapeConfig) -> str | None:
    if config.basic_auth is None:
        return None
    if config.basic_auth.password_file:
        return _read_secret(config.basic_auth.password_file, "password_file")
    return config.basic_auth.password or ""


@dataclass
class _Job:
    """One running scrape job: its client, its targets and their loops."""

    #: the job's ``job_name``
    name: str
    config: ScrapeConfig
    #: the config plus the credentials read from files: a job is kept across a
    #: reload only if this is unchanged (a rotated token file restarts it)
    identity: tuple[object, ...]
    client: httpx.AsyncClient
    targets: list[ScrapeTarget]
    scheduler: Scheduler

    async def stop(self) -> None:
        """Stop the loops (staleness markers for every target) and close the client."""
        await self.scheduler.stop()
        await self.client.aclose()

    async def discard(self) -> None:
        """Close the client of a job that never ran."""
        await self.client.aclose()


#: A new set of scrape jobs from :meth:`ScrapeManager.prepare`, not yet running.
ScrapeReload = JobReload[_Job]


class ScrapeManager(JobSet[_Job]):
    """Scrapes every target of ``configs`` into ``storage`` on ``clock``.

    ``transport`` replaces the HTTP transport of every job's client (tests,
    proxies); configs should already be :meth:`ScrapeConfig.resolved`.

    A new config is applied in two steps, as Prometheus reloads its scrape
    pools: :meth:`prepare` builds the changed jobs (and raises
    :class:`ConfigError` without touching anything running), :meth:`apply`
    stops the removed or changed jobs (staleness markers for their series),
    starts the new ones and leaves unchanged jobs running.
    """

    def __init__(
        self,
        configs: Sequence[ScrapeConfig],
        storage: Storage,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
        runner: BlockingRunner = run_in_thread,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._transport = transport
        self._seed = seed
        self._runner = runner
        self._lock = threading.Lock()
        super().__init__()
        self.jobs = self.prepare(configs).jobs
        self.targets: list[ScrapeTarget] = [t for j in self.jobs for t in j.targets]

    def prepare(self, configs: Sequence[ScrapeConfig]) -> ScrapeReload:
        """Build the jobs of ``configs`` that differ from the running ones; changes nothing.

        Raises :class:`ConfigError` (an unreadable secret or CA file, a bad
        target address). Pass the result to :meth:`apply`, or to
        :meth:`discard` if the reload is abandoned.
        """
        current = self.by_name()
        jobs: list[_Job] = []
        seen: set[tuple[str, Labels]] = set()
        # On an error below, the clients built so far are dropped unused: a client
        # that never sent a request holds no connection.
        for config in configs:
            password = _password(config)
            headers = {**config.header_values(), **_auth_headers(config)}
            identity = (config, tuple(sorted(headers.items())), password)
            old = current.get(config.job_name)
            if (
                old is not None
                and old.identity == identity
                and not any((t.url, t.labels) in seen for t in old.targets)
            ):
                seen.update((t.url, t.labels) for t in old.targets)
                jobs.append(old)
                continue
            jobs.append(self._build_job(config, identity, password, headers, seen))
        return self.plan(jobs)

    def _build_job(
        self,
        config: ScrapeConfig,
        identity: tuple[object, ...],
        password: str | None,
        headers: dict[str, str],
        seen: set[tuple[str, Labels]],
    ) -> _Job:
        client = self._client(config, self._transport, password)
        targets: list[ScrapeTarget] = []
        for group in config.static_configs:
            for address in group.targets:
                built = target_labels(config, address, group.labels)
                if built is None:
                    continue
                url, labels = built
                if (url, labels) in seen:
                    continue  # the same target listed twice is scraped once, as in Prometheus
                seen.add((url, labels))
                targets.append(
                    ScrapeTarget(
                        config,
                        url,
                        labels,
                        storage=self._storage,
                        client=client,
                        clock=self._clock,
                        headers=headers,
                        write_lock=self._lock,
                        runner=self._runner,
                    )
                )
        # One scheduler per job, so a job can stop without touching the others;
        # the offsets depend only on each target's key and the seed, as before.
        scheduler = Scheduler(self._clock, targets, seed=self._seed)
        return _Job(config.job_name, config, identity, client, targets, scheduler)

    async def apply(self, reload: ScrapeReload) -> None:
        """Switch to ``reload`` (the result of the latest :meth:`prepare`).

        Removed and changed jobs stop first (their series get staleness
        markers, as when Prometheus drops a target); unchanged jobs run on
        untouched; new jobs start if the manager is running.
        """
        await super().apply(reload)
        self.targets = [t for j in self.jobs for t in j.targets]

    @staticmethod
    def _client(
        config: ScrapeConfig, transport: httpx.AsyncBaseTransport | None, password: str | None
    ) -> httpx.AsyncClient:
        auth = None
        if config.basic_auth is not None:
            auth = httpx.BasicAuth(config.basic_auth.username, password or "")
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

    def statuses(self) -> list[TargetStatus]:
        """The status of every target, in config order."""
        return [t.status for t in self.targets]

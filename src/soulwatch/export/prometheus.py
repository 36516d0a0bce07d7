"""``soulwatch export prometheus DIR``: the same monitoring, run by Prometheus and Alertmanager.

What is written into ``DIR`` (every file loads in Prometheus 2.42 and
Alertmanager 0.25: ``promtool check config``, ``amtool check-config``):

* ``prometheus.yml``: ``global``; ``scrape_configs``, soulwatch's scrape jobs
  as they are, plus one job ``soulwatch-federate`` that scrapes soulwatch's
  ``/federate`` with ``honor_labels: true`` for what only soulwatch produces
  (probes, collectors, heartbeats, RUM, OTLP: they keep their ``job`` and
  ``instance``, so the rules that read them work unchanged); ``rule_files``;
  ``alerting.alertmanagers`` (the Alertmanager given on the command line) and
  ``alert_relabel_configs``; ``remote_write``.
* ``rules/``: every rule file, copied as it is (comments included) when it
  loads in Prometheus 2.42, else rewritten without what would not load
  (soulwatch's ``recover_expr`` / ``no_data``, newer group fields, a rule
  whose PromQL is newer than Prometheus 2), each left-out part named in a
  warning.
* ``alertmanager.yml``: the routing tree, receivers, inhibition rules and
  time intervals (:func:`soulwatch.alerting.export.export_alertmanager`).
* ``grafana/<board>.json``: the console's boards as Grafana dashboards over
  the Prometheus data source (``soulwatch boards export grafana``).
* ``soulwatch-exporter.yaml``: the soulwatch configuration that keeps
  running the probes, heartbeats and collectors for Prometheus to federate,
  without rules, routing or scrape jobs (Prometheus does those now). It is
  the original file's text with those sections removed, so ``${VAR}`` and
  ``*_env`` references stay references.

Blackbox-exporter jobs are not written for HTTP probes: soulwatch's Redis
and Upstash probes have no blackbox module, and federating keeps every probe
series exactly as the rules know it.

Secrets never reach the written files: a scrape job's or remote write's
password, credentials or bearer token becomes the matching ``*_file`` key
pointing at ``secrets/<name>`` (relative to ``DIR``, where Prometheus and
Alertmanager resolve it), and a warning names each file to fill.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soulwatch.alerting.export import export_alertmanager
from soulwatch.api.console.boards import grafana_json, load_boards
from soulwatch.config import SoulwatchConfig
from soulwatch.duration import format_duration
from soulwatch.promql.parser import parse
from soulwatch.promql.portability import prometheus2_incompatibilities
from soulwatch.promql.printer import go_quote

#: The scrape_config keys Prometheus 2.42 reads; its YAML decoding refuses any other.
_SCRAPE_KEYS = frozenset(
    {
        "job_name", "honor_labels", "honor_timestamps", "params", "scrape_interval",
        "scrape_timeout", "metrics_path", "scheme", "body_size_limit", "sample_limit",
        "target_limit", "label_limit", "label_name_length_limit", "label_value_length_limit",
        "static_configs", "relabel_configs", "metric_relabel_configs", "authorization",
        "bearer_token", "bearer_token_file", "basic_auth", "tls_config", "follow_redirects",
        "enable_http2",
    }
)  # fmt: skip
_REMOTE_WRITE_KEYS = frozenset(
    {
        "url", "name", "remote_timeout", "headers", "write_relabel_configs", "basic_auth",
        "authorization", "bearer_token", "bearer_token_file", "tls_config", "follow_redirects",
        "send_exemplars", "send_native_histograms", "queue_config", "metadata_config",
    }
)  # fmt: skip
_GROUP_KEYS = frozenset({"name", "interval", "limit", "rules"})
_RULE_KEYS = frozenset(
    {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
)
#: Sections of soulwatch.yaml that Prometheus and Alertmanager take over.
_TAKEN_OVER = (
    "rule_files",
    "rule_evaluation_phase",
    "scrape_configs",
    "scrape_config_files",
    "alerting",
    "remote_write",
    "query",
    "console",
)
SECRETS_DIR = "secrets"


@dataclass
class ExportResult:
    """What an export wrote, what must still be provided, and what was left out."""

    files: list[Path] = field(default_factory=list)
    #: ``*_file`` references written (relative to the export directory): fill them
    secret_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_prometheus(
    config: SoulwatchConfig,
    out_dir: Path,
    *,
    alertmanager: str = "127.0.0.1:9093",
    soulwatch: str | None = None,
) -> ExportResult:
    """Write ``config`` as Prometheus and Alertmanager configuration into ``out_dir``.

    ``alertmanager`` is where Prometheus sends alerts (``host:port``);
    ``soulwatch`` is where it federates soulwatch's own series (default: ``listen``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result = _Export(config, out_dir)
    rule_files = result.rule_files()
    prometheus: dict[str, Any] = {"global": result.global_section()}
    if rule_files:
        prometheus["rule_files"] = rule_files
    alerting: dict[str, Any] = {
        "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
    }
    if config.alerting.alert_relabel_configs:
        alerting["alert_relabel_configs"] = [
            _dump(r) for r in config.alerting.alert_relabel_configs
        ]
    if config.alerting.alertmanagers:
        count = len(config.alerting.alertmanagers)
        result.warn(
            f"alerting.alertmanagers: soulwatch also forwarded to {count} Alertmanager(s);"
            " prometheus.yml sends to the one given (--alertmanager)"
        )
    prometheus["alerting"] = alerting
    if config.scrape_config_files:
        result.warn("scrape_config_files: needs Prometheus 2.43 or later, left out")
    jobs = [result.scrape_job(job) for job in config.scrape_configs]
    jobs.append(result.federation_job(soulwatch or config.listen))
    prometheus["scrape_configs"] = jobs
    remote = [result.remote_write(entry) for entry in config.remote_write]
    if remote:
        prometheus["remote_write"] = remote
    result.write(
        "prometheus.yml",
        "# Written by `soulwatch export prometheus`: loads in Prometheus 2.42 and later.\n",
        prometheus,
    )
    result.alertmanager()
    result.grafana_dashboards()
    result.exporter_config()
    return result.result


class _Export:
    """One export in progress: the config, the directory, and what was found."""

    def __init__(self, config: SoulwatchConfig, out_dir: Path) -> None:
        self.config = config
        self.out_dir = out_dir
        self.result = ExportResult()

    def warn(self, message: str) -> None:
        self.result.warnings.append(message)

    def write(self, name: str, header: str, data: Any) -> Path:
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + _yaml(data), encoding="utf-8")
        self.result.files.append(path)
        return path

    def secret(self, data: dict[str, Any], key: str, name: str, where: str) -> None:
        """Replace ``data[key]`` by ``data[key + '_file']`` under the secrets directory."""
        if not data.get(key):
            data.pop(key, None)
            return
        del data[key]
        data[f"{key}_file"] = self.secret_file(name, f"{where}: {key} written as {key}_file")

    def secret_file(self, name: str, what: str) -> str:
        """A reference to ``secrets/<name>``, with a warning saying to fill it."""
        ref = f"{SECRETS_DIR}/{name}"
        self.result.secret_files.append(ref)
        self.warn(f"{what}: {ref} (put the value there)")
        return ref

    def http_secrets(self, data: dict[str, Any], prefix: str, where: str) -> None:
        """The secrets of an HTTP client section (basic auth, authorization, bearer token)."""
        basic = data.get("basic_auth")
        if isinstance(basic, dict):
            self.secret(basic, "password", f"{prefix}_password", where)
        auth = data.get("authorization")
        if isinstance(auth, dict):
            self.secret(auth, "credentials", f"{prefix}_credentials", where)
        self.secret(data, "bearer_token", f"{prefix}_bearer_token", where)

    def global_section(self) -> dict[str, Any]:
        glob = self.config.global_
        out: dict[str, Any] = {
            "scrape_interval": format_duration(glob.scrape_interval),
            "scrape_timeout": format_duration(glob.scrape_timeout),
            "evaluation_interval": format_duration(glob.evaluation_interval),
        }
        if glob.external_labels:
            out["external_labels"] = dict(glob.external_labels)
        return out

    def scrape_job(self, job: Any) -> dict[str, Any]:
        data = _dump(job)
        name = data["job_name"]
        for key in sorted(set(data) - _SCRAPE_KEYS):
            self.warn(f"scrape job {name!r}: {key} does not load in Prometheus 2.42, left out")
            del data[key]
        self.http_secrets(data, f"scrape_{_safe(name)}", f"scrape job {name!r}")
        return data

    def remote_write(self, entry: Any) -> dict[str, Any]:
        data = _dump(entry)
        name = entry.queue_name
        for key in sorted(set(data) - _REMOTE_WRITE_KEYS):
            self.warn(f"remote_write {name!r}: {key} does not load in Prometheus 2.42, left out")
            del data[key]
        self.http_secrets(data, f"remote_write_{_safe(name)}", f"remote_write {name!r}")
        return data

    def federation_job(self, target: str) -> dict[str, Any]:
        """The job that scrapes what only soulwatch produces from its ``/federate``."""
        config = self.config
        matches = [f"{{job={go_quote(p.job_name)}}}" for p in config.probes]
        collectors = config.collectors
        if collectors.soulcaster or collectors.e2b or collectors.vercel or config.rum.sites:
            matches.append('{instance="collector"}')
        if config.otlp.enabled:
            matches.append('{job="otlp"}')
        # Checks can be created through the API at any time: always federate heartbeats.
        matches.append('{__name__=~"heartbeat_.+"}')
        intervals = [config.global_.scrape_interval, *(p.interval for p in config.probes)]
        job: dict[str, Any] = {
            "job_name": "soulwatch-federate",
            "honor_labels": True,
            "metrics_path": "/federate",
            "params": {"match[]": matches},
            "scrape_interval": format_duration(min(intervals)),
            "scrape_timeout": format_duration(min(*intervals, 10.0)),
            "static_configs": [{"targets": [target]}],
        }
        if config.auth.reads == "token":
            ref = self.secret_file("soulwatch_read_token", "soulwatch-federate: a read token")
            job["authorization"] = {"credentials_file": ref}
        return job

    def rule_files(self) -> list[str]:
        """Copy or rewrite every rule file into ``rules/``; their paths for ``rule_files``."""
        out: list[str] = []
        used: set[str] = set()
        for path in self.config.rule_paths():
            name = path.name
            n = 1
            while name in used:
                n += 1
                name = f"{path.stem}-{n}{path.suffix}"
            used.add(name)
            target = self.out_dir / "rules" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text) or {}
            if self._portable(data, name):
                shutil.copyfile(path, target)
                self.result.files.append(target)
            else:
                self.write(
                    f"rules/{name}",
                    f"# {path.name}, rewritten by `soulwatch export prometheus` for Prometheus 2.42"
                    " (see its warnings).\n",
                    data,
                )
            out.append(f"rules/{name}")
        return out

    def _portable(self, data: dict[str, Any], file: str) -> bool:
        """Remove what Prometheus 2.42 would refuse from ``data``; whether nothing was."""
        portable = True
        for group in data.get("groups") or []:
            gname = group.get("name", "?")
            for key in sorted(set(group) - _GROUP_KEYS):
                self.warn(f"{file}: group {gname!r}: {key} does not load in Prometheus 2.42")
                del group[key]
                portable = False
            kept = []
            for rule in group.get("rules") or []:
                rname = rule.get("alert") or rule.get("record") or "?"
                for key in sorted(set(rule) - _RULE_KEYS):
                    self.warn(f"{file}: rule {rname!r}: {key} is soulwatch-only, left out")
                    del rule[key]
                    portable = False
                problems = prometheus2_incompatibilities(str(rule.get("expr", "")))
                if problems:
                    self.warn(
                        f"{file}: rule {rname!r} left out: {problems[0].message} in Prometheus 2"
                    )
                    portable = False
                    continue
                kept.append(rule)
            group["rules"] = kept
        return portable

    def alertmanager(self) -> None:
        routing = self.config.routing
        if routing is None:
            self.warn("no alerting section: no alertmanager.yml written")
            return
        text, warnings = export_alertmanager(routing, secrets_dir=SECRETS_DIR)
        for warning in warnings:
            self.warn(f"alertmanager.yml: {warning}")
            if "_file: " in warning:
                self.result.secret_files.append(warning.split("_file: ", 1)[1].split(" ")[0])
        for receiver in yaml.safe_load(text).get("receivers") or []:
            if any("url_file" in c for c in receiver.get("webhook_configs") or []):
                self.warn(
                    f"alertmanager.yml: receiver {receiver['name']!r}: a webhook's url_file needs"
                    " Alertmanager 0.26 or later"
                )
        path = self.out_dir / "alertmanager.yml"
        path.write_text(
            "# Written by `soulwatch export prometheus`: loads in Alertmanager 0.25 and later.\n"
            + text,
            encoding="utf-8",
        )
        self.result.files.append(path)

    def grafana_dashboards(self) -> None:
        """The console's boards as Grafana dashboards (``soulwatch boards export grafana``)."""
        paths = self.config.console.board_paths(self.config)
        for path, board in zip(paths, load_boards(paths, validate_expr=parse), strict=True):
            target = self.out_dir / "grafana" / f"{path.stem}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(grafana_json(board), encoding="utf-8")
            self.result.files.append(target)

    def exporter_config(self) -> None:
        """soulwatch.yaml without what Prometheus and Alertmanager now do."""
        source = self.config.source
        if source is None:
            return
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        kept = {k: v for k, v in raw.items() if k not in _TAKEN_OVER}
        kept["data_dir"] = str(self.config.resolve(raw.get("data_dir", "data")))
        kept = _absolute_files(kept, self.config.base_dir)
        self.write(
            "soulwatch-exporter.yaml",
            f"# {source.name} as the exporter Prometheus federates (`soulwatch-federate`):\n"
            "# probes, heartbeats and collectors only; rules, routing and scrapes are\n"
            "# Prometheus's and Alertmanager's now. Written by `soulwatch export prometheus`.\n",
            kept,
        )


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(
        mode="json", by_alias=True, exclude_unset=True, exclude_none=True
    )
    return data


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _absolute_files(value: Any, base: Path) -> Any:
    """``*_file`` paths made absolute against ``base`` (the original config's folder)."""
    if isinstance(value, list):
        return [_absolute_files(v, base) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(key, str) and key.endswith("_file") and isinstance(item, str) and item:
            path = Path(item).expanduser()
            out[key] = str(path if path.is_absolute() else base / path)
        else:
            out[key] = _absolute_files(item, base)
    return out


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings (PromQL, descriptions) as ``|`` literals."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )

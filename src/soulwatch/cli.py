"""The ``soulwatch`` command line.

This is the only module that prints or exits. Each command is a small
function ``_cmd_<name>(args) -> int`` that calls library code and turns its
results and :class:`~soulwatch.exceptions.SoulwatchError` into output and an
exit code (0 ok, 1 a check failed, 2 a usage or input error).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from soulwatch import __version__
from soulwatch.exceptions import ConfigError, SoulwatchError
from soulwatch.promql.engine import FEATURES, Engine
from soulwatch.promql.promqltest import Outcome, run_file

if TYPE_CHECKING:
    from soulwatch.alerting.config import AlertingConfig

Command = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulwatch",
        description="Monitoring and alerting for the Soulcaster platform.",
    )
    parser.add_argument("--version", action="version", version=f"soulwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    # `check` and `test` are shared by several areas: each adds its own WHAT.
    check = sub.add_parser("check", help="validate files").add_subparsers(
        dest="check_what", metavar="WHAT", required=True
    )
    test = sub.add_parser("test", help="run unit tests").add_subparsers(
        dest="test_what", metavar="WHAT", required=True
    )
    _add_promql_parser(sub)
    _add_rules_commands(check, test)
    _add_scenario_command(test)
    _add_routes_parser(sub)
    _add_silence_parser(sub)
    _add_boards_parser(sub)
    _add_export_parser(sub)
    _add_monitor_commands(sub, check)
    _add_demo_command(sub)
    return parser


def _add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="run a sample Soulcaster-like platform watched by soulwatch, with faults"
    )
    demo.add_argument(
        "--scenario", action="append", metavar="NAME", help="run only this scenario (repeatable)"
    )
    demo.add_argument(
        "--check", action="store_true",
        help="no live display; exit 0 only if every expected alert fired, was delivered "
        "and resolved",
    )  # fmt: skip
    demo.add_argument(
        "--speed", type=float, default=60.0, metavar="X",
        help="how many times faster than real time the demo clock runs (default 60)",
    )  # fmt: skip
    demo.add_argument(
        "--embedded-redis", action="store_true",
        help="use the embedded Redis stand-in even when redis-server is installed",
    )  # fmt: skip
    demo.add_argument("--list", action="store_true", help="list the scenarios and exit")
    demo.set_defaults(func=_cmd_demo)


def _add_promql_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    promql = sub.add_parser("promql", help="PromQL tools")
    promql_sub = promql.add_subparsers(dest="promql_command", metavar="COMMAND", required=True)
    test = promql_sub.add_parser(
        "test",
        help="run Prometheus PromQL test scripts (promqltest format) against soulwatch's engine",
    )
    test.add_argument("files", nargs="+", metavar="FILE", help="a .test script")
    test.add_argument(
        "--show-unsupported",
        action="store_true",
        help="also list each unsupported case and why it is out of scope",
    )
    test.add_argument(
        "--enable-feature",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="enable engine features as Prometheus's flag of the same name does: "
        "promql-delayed-name-removal, type-and-unit-labels",
    )
    test.set_defaults(func=_cmd_promql_test)


def _add_rules_commands(
    check: argparse._SubParsersAction[argparse.ArgumentParser],
    test: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    check_rules = check.add_parser(
        "rules", help="validate Prometheus rule files like `promtool check rules`"
    )
    check_rules.add_argument("files", nargs="+", metavar="FILE")
    check_rules.add_argument(
        "--target",
        choices=["prometheus-2"],
        help="also warn where a file would not load on this older Prometheus",
    )
    check_rules.set_defaults(func=_cmd_check_rules)
    test_rules = test.add_parser(
        "rules", help="run rule unit tests in `promtool test rules` format"
    )
    test_rules.add_argument("files", nargs="+", metavar="FILE")
    test_rules.set_defaults(func=_cmd_test_rules)


def _add_monitor_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    check: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    run = sub.add_parser("run", help="run the monitor")
    run.add_argument("-c", "--config", required=True, metavar="FILE", help="soulwatch.yaml")
    run.add_argument("--data-dir", metavar="DIR", help="override data_dir")
    run.add_argument("--listen", metavar="HOST:PORT", help="override listen")
    run.add_argument(
        "--enable-feature", action="append", default=[], metavar="NAME[,NAME]",
        help="PromQL features, as Prometheus's flag of the same name (adds to enable_features)",
    )  # fmt: skip
    run.add_argument(
        "--agent", action="store_true",
        help="agent mode: scrape, probe and collect, and only remote-write (mode: agent)",
    )  # fmt: skip
    run.add_argument(
        "--log-format", choices=("auto", "json", "console"), default="auto",
        help="log format (auto: console on a terminal, else JSON)",
    )  # fmt: skip
    run.set_defaults(func=_cmd_run)

    check_config = check.add_parser("config", help="validate a soulwatch.yaml")
    check_config.add_argument("file", metavar="FILE")
    check_config.set_defaults(func=_cmd_check_config)

    init = sub.add_parser("init", help="write a commented starter config")
    init.add_argument("--preset", choices=("soulcaster",), default="soulcaster")
    init.add_argument("-o", "--output", default="soulwatch.yaml", metavar="FILE")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_cmd_init)


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from soulwatch.config import load_config
    from soulwatch.log_setup import configure_logging
    from soulwatch.server import serve

    json_logs = args.log_format == "json" or (args.log_format == "auto" and not sys.stderr.isatty())
    configure_logging(json=json_logs)
    # Everything soulwatch writes (outbox payloads, silences, samples) is for
    # its own user only: files 0600, directories 0700.
    os.umask(0o077)
    try:
        features = [f.strip() for arg in args.enable_feature for f in arg.split(",") if f.strip()]
        config = load_config(args.config).with_overrides(
            data_dir=args.data_dir, listen=args.listen, enable_features=features, agent=args.agent
        )
    except ValueError as exc:
        print(f"soulwatch: error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from soulwatch.config import load_config
    from soulwatch.wiring import check_rules

    config = load_config(args.file)
    groups = check_rules(config)
    jobs = len(config.scrape_configs)
    checks = len(config.heartbeats.checks)
    boards = _load_boards(config.console.board_paths(config))
    print(
        f"{args.file}: OK ({jobs} scrape job(s), {len(groups)} rule group(s),"
        f" {checks} heartbeat check(s), {len(boards)} board(s),"
        f" routing {'on' if config.routing else 'off'})"
    )
    return 0


def _load_boards(paths: list[Any]) -> list[Any]:
    from soulwatch.api.console.boards import load_boards
    from soulwatch.promql.parser import parse

    return load_boards(paths, validate_expr=parse)


def _add_boards_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    boards = sub.add_parser("boards", help="console boards (YAML panels of PromQL)")
    bsub = boards.add_subparsers(dest="boards_command", metavar="SUBCOMMAND", required=True)
    export = bsub.add_parser("export", help="write a board as a Grafana dashboard JSON")
    export.add_argument("format", choices=["grafana"], help="the output format")
    export.add_argument("file", metavar="BOARD", help="a board file (YAML)")
    export.add_argument("-o", "--output", help="write here instead of standard output")
    export.set_defaults(func=_cmd_boards_export)


def _cmd_boards_export(args: argparse.Namespace) -> int:
    from soulwatch.api.console.boards import grafana_json

    (board,) = _load_boards([Path(args.file)])
    text = grafana_json(board)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def _add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser("export", help="write the configuration for other engines")
    esub = export.add_subparsers(dest="export_what", metavar="WHAT", required=True)
    prom = esub.add_parser(
        "prometheus",
        help="prometheus.yml, rule files and alertmanager.yml for Prometheus 2.42 + Alertmanager",
    )
    prom.add_argument("dir", metavar="DIR", help="where to write (created if missing)")
    prom.add_argument("-c", "--config", required=True, metavar="FILE", help="soulwatch.yaml")
    prom.add_argument(
        "--alertmanager", default="127.0.0.1:9093", metavar="HOST:PORT",
        help="where Prometheus sends alerts (default: 127.0.0.1:9093)",
    )  # fmt: skip
    prom.add_argument(
        "--soulwatch", metavar="HOST:PORT",
        help="where Prometheus federates soulwatch's probes and collectors (default: listen)",
    )  # fmt: skip
    prom.set_defaults(func=_cmd_export_prometheus)


def _cmd_export_prometheus(args: argparse.Namespace) -> int:
    from soulwatch.config import load_config
    from soulwatch.config_loading import PlaceholderEnv
    from soulwatch.export import export_prometheus

    # Secrets are written as *_file references, never values: unset variables may stay unset.
    env = PlaceholderEnv(os.environ)
    config = load_config(args.config, env)
    result = export_prometheus(
        config, Path(args.dir), alertmanager=args.alertmanager, soulwatch=args.soulwatch
    )
    for warning in result.warnings:
        print(f"soulwatch: warning: {warning}", file=sys.stderr)
    for path in result.files:
        print(f"wrote {path}")
    if result.secret_files:
        print(f"fill in (relative to {args.dir}): {', '.join(sorted(set(result.secret_files)))}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from importlib.resources import files
    from pathlib import Path

    target = Path(args.output)
    if target.exists() and not args.force:
        print(f"soulwatch: error: {target} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    preset = files("soulwatch.presets").joinpath(args.preset)
    target.write_text(preset.joinpath("soulwatch.yaml").read_text())
    print(f"wrote {target}")
    # The rule pack and its unit tests go beside the config, to be read and edited.
    rules = target.parent / "rules"
    for source in (preset.joinpath("rules"), preset.joinpath("rules", "tests")):
        dest = rules / source.name if source.name == "tests" else rules
        dest.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.name.endswith(".yml") and (args.force or not (dest / item.name).exists()):
                (dest / item.name).write_text(item.read_text())
    print(f"wrote the rule pack to {rules}/ (unit tests in {rules}/tests/)")
    # The scenario examples docs/scenarios.md runs, pointed at this config.
    scenarios = target.parent / "scenarios"
    scenarios.mkdir(parents=True, exist_ok=True)
    for item in preset.joinpath("scenarios").iterdir():
        dest = scenarios / item.name
        if item.name.endswith(".yml") and (args.force or not dest.exists()):
            text = item.read_text().replace(
                "config: ../soulwatch.yaml", f"config: ../{target.name}"
            )
            dest.write_text(text)
    print(f"wrote the scenario examples to {scenarios}/")
    print(f"run them with: soulwatch test scenario {scenarios}/*.scenario.yml")
    boards = target.parent / "boards"
    boards.mkdir(parents=True, exist_ok=True)
    for item in preset.joinpath("boards").iterdir():
        fresh = args.force or not (boards / item.name).exists()
        if item.name.endswith((".yml", ".json")) and fresh:
            (boards / item.name).write_text(item.read_text())
    print(f"wrote the console's board to {boards}/")
    print(f"check it with: soulwatch check config {target}")
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"soulwatch {__version__}")
    return 0


def _cmd_promql_test(args: argparse.Namespace) -> int:
    features = [f.strip() for arg in args.enable_feature for f in arg.split(",") if f.strip()]
    unknown = sorted(set(features) - FEATURES)
    if unknown:
        print(f"soulwatch: error: unknown feature {unknown[0]!r}", file=sys.stderr)
        return 2
    any_failed = False
    malformed = False
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"soulwatch: error: {name}: no such file", file=sys.stderr)
            return 2
        try:
            report = run_file(path, functools.partial(Engine, features=features))
        except SoulwatchError as exc:
            # One malformed script does not hide the results of the others.
            print(f"soulwatch: error: {exc}", file=sys.stderr)
            malformed = True
            continue
        print(
            f"{name}: {report.passed} passed, {report.failed} failed, "
            f"{report.unsupported} unsupported"
        )
        for case in report.cases:
            if case.outcome is Outcome.FAILED:
                any_failed = True
                print(f"  FAIL {case.file}:{case.line}: {case.query}")
                print(f"    {case.reason}")
                if case.expected or case.got:
                    print(f"    expected: {case.expected}")
                    print(f"    got:      {case.got}")
            elif case.outcome is Outcome.UNSUPPORTED and args.show_unsupported:
                print(f"  UNSUPPORTED ({case.reason}) {case.file}:{case.line}: {case.query}")
    if malformed:
        return 2
    return 1 if any_failed else 0


def _cmd_check_rules(args: argparse.Namespace) -> int:
    from soulwatch.rules.loader import check_portability, check_rule_file

    failed = False
    for path in args.files:
        print(f"Checking {path}")
        groups, problems = check_rule_file(path)
        warnings = check_portability(path, args.target) if args.target else []
        if problems:
            failed = True
            print(f"  FAILED: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  {problem}")
        else:
            count = sum(len(g.rules) for g in groups)
            print(f"  SUCCESS: {count} rules found")
            if any(r.uses_extensions for g in groups for r in g.rules):
                print("  NOTE: uses soulwatch extensions (recover_expr/no_data): soulwatch-only")
        if warnings:
            print(f"  WARNING: {len(warnings)} thing(s) {args.target} would not load")
            for warning in warnings:
                print(f"  {warning}")
        print()
    return 1 if failed else 0


def _cmd_test_rules(args: argparse.Namespace) -> int:
    from soulwatch.rules.unittest import run_test_file

    failed = False
    for path in args.files:
        result = run_test_file(path)
        failed |= not result.ok
        print(result.report())
    return 1 if failed else 0


def _add_scenario_command(test: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scenario = test.add_parser(
        "scenario",
        help="run timelines through rules and routing on a simulated clock (docs/scenarios.md)",
    )
    scenario.add_argument("files", nargs="+", metavar="FILE", help="a scenario file")
    scenario.set_defaults(func=_cmd_test_scenario)


def _cmd_test_scenario(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os

    from soulwatch.duration import format_duration
    from soulwatch.log_setup import configure_logging
    from soulwatch.scenario import load_scenario, run_scenario

    # The monitor's own info logs would drown the report: warnings only, on stderr.
    configure_logging(json=False, level=logging.WARNING)
    scenarios = []
    for name in args.files:
        try:
            scenarios.append(load_scenario(name, os.environ))
        except SoulwatchError as exc:
            print(f"soulwatch: error: {exc}", file=sys.stderr)
            return 2
    failed = 0
    for scenario in scenarios:
        result = asyncio.run(run_scenario(scenario))
        print(f"{scenario.file}: {scenario.name}")
        for step in result.steps:
            mark = "PASS" if step.passed else "FAIL"
            print(f"  {mark}  {format_duration(step.at):>10}  line {step.line}: {step.summary}")
            for problem in step.problems:
                print(f"        {problem}")
        passed = sum(s.passed for s in result.steps)
        print(f"  {'OK' if result.ok else 'FAILED'}: {passed}/{len(result.steps)} steps passed")
        failed += not result.ok
    if len(scenarios) > 1:
        print(f"{len(scenarios) - failed} of {len(scenarios)} scenarios passed")
    return 1 if failed else 0


def _add_routes_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    routes = sub.add_parser("routes", help="inspect the alert routing configuration")
    rsub = routes.add_subparsers(dest="routes_command", metavar="SUBCOMMAND", required=True)
    test = rsub.add_parser("test", help="print the receivers a label set reaches")
    test.add_argument("--labels", required=True, help="label set, e.g. 'alertname=X,priority=P1'")
    test.add_argument(
        "-c", "--config", required=True, help="soulwatch.yaml, or a routing file (alertmanager.yml)"
    )
    test.add_argument(
        "--verbose", action="store_true", help="also print each matched route's grouping and timing"
    )
    test.set_defaults(func=_cmd_routes_test)
    export = rsub.add_parser("export", help="write the routing as an alertmanager.yml")
    export.add_argument(
        "-c", "--config", required=True, help="soulwatch.yaml, or a routing file (alertmanager.yml)"
    )
    export.add_argument("-o", "--output", help="write here instead of standard output")
    export.add_argument(
        "--secrets-dir", default="secrets", metavar="DIR",
        help="where the exported *_file references point (default: secrets)",
    )  # fmt: skip
    export.set_defaults(func=_cmd_routes_export)


def _cmd_routes_test(args: argparse.Namespace) -> int:
    from soulwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
    from soulwatch.alerting.routing import build_tree
    from soulwatch.tsdb.model import Labels, MatchType

    try:
        matchers = parse_matchers(args.labels)
    except MatcherSyntaxError as exc:
        print(f"soulwatch: error: --labels: {exc}", file=sys.stderr)
        return 2
    if any(m.type is not MatchType.EQUAL for m in matchers):
        print("soulwatch: error: --labels takes name=value pairs only", file=sys.stderr)
        return 2
    tree = build_tree(_load_routing(args.config).route)
    nodes = tree.match(Labels((m.name, m.value) for m in matchers))
    print(",".join(n.options.receiver for n in nodes))
    if args.verbose:
        for n in nodes:
            o = n.options
            group_by = "..." if o.group_by_all else ",".join(sorted(o.group_by))
            print(
                f"  {o.receiver}: route {n.key} group_by=[{group_by}] group_wait={o.group_wait:g}s"
                f" group_interval={o.group_interval:g}s repeat_interval={o.repeat_interval:g}s"
            )
    return 0


def _load_routing(path: str) -> AlertingConfig:
    """The routing of a soulwatch.yaml (its ``alerting`` section) or of an alertmanager.yml.

    Secrets are not needed to inspect routing: an unset variable reads as a
    placeholder (and the export writes ``*_file`` references, never values).
    """
    from soulwatch.alerting.config import load_config as load_alertmanager
    from soulwatch.config import load_config
    from soulwatch.config_loading import PlaceholderEnv, top_level_keys

    env = PlaceholderEnv(os.environ)
    if "route" in top_level_keys(Path(path)):
        routing = load_alertmanager(path, env=env)
    else:
        loaded = load_config(path, env).routing
        if loaded is None:
            raise ConfigError("no routing: the file has no alerting section", file=path)
        routing = loaded
    if env.placeholders:
        names = ", ".join(sorted(env.placeholders))
        print(f"soulwatch: note: not set, read as placeholders: {names}", file=sys.stderr)
    return routing


def _cmd_routes_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from soulwatch.alerting.export import export_alertmanager

    text, warnings = export_alertmanager(_load_routing(args.config), secrets_dir=args.secrets_dir)
    for warning in warnings:
        print(f"soulwatch: warning: {warning}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0


def _add_silence_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import os

    silence = sub.add_parser(
        "silence", help="add, list or expire silences on a running monitor (Alertmanager v2 API)"
    )
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the monitor's base URL (env SOULWATCH_URL, default http://127.0.0.1:9797)",
    )
    connection.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="bearer token for write endpoints (env SOULWATCH_TOKEN)",
    )
    # Accepted before or after the subcommand: `silence --url U add` or `silence add --url U`.
    silence.add_argument(
        "--url",
        default=os.environ.get("SOULWATCH_URL", "http://127.0.0.1:9797"),
        help="the monitor's base URL (env SOULWATCH_URL)",
    )
    silence.add_argument(
        "--token",
        default=os.environ.get("SOULWATCH_TOKEN"),
        help="bearer token (env SOULWATCH_TOKEN)",
    )
    ssub = silence.add_subparsers(dest="silence_command", metavar="SUBCOMMAND", required=True)
    add = ssub.add_parser(
        "add", parents=[connection], help="silence alerts matching all the given matchers"
    )
    add.add_argument("matchers", nargs="+", help="e.g. alertname=BackendDown 'env=~\"prod|stage\"'")
    add.add_argument("-d", "--duration", default="1h", help="how long (e.g. 30m, 2h; default 1h)")
    add.add_argument("-a", "--author", default=os.environ.get("USER", "soulwatch"))
    add.add_argument("-m", "--comment", required=True, help="why")
    add.set_defaults(func=_cmd_silence_add)
    ssub.add_parser("list", parents=[connection], help="list silences").set_defaults(
        func=_cmd_silence_list
    )
    expire = ssub.add_parser("expire", parents=[connection], help="expire silences by id")
    expire.add_argument("ids", nargs="+")
    expire.set_defaults(func=_cmd_silence_expire)


def _cmd_silence_add(args: argparse.Namespace) -> int:
    from soulwatch.alerting.silence_client import SilenceClient
    from soulwatch.duration import parse_duration

    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        print(f"soulwatch: error: --duration: {exc}", file=sys.stderr)
        return 2
    with SilenceClient(args.url, token=args.token) as client:
        print(
            client.add(args.matchers, duration=duration, author=args.author, comment=args.comment)
        )
    return 0


def _cmd_silence_list(args: argparse.Namespace) -> int:
    from soulwatch.alerting.matchers import format_matchers
    from soulwatch.alerting.silence_client import SilenceClient

    with SilenceClient(args.url, token=args.token) as client:
        silences = client.list()
    print(f"{'ID':36}  {'STATE':8}  {'ENDS AT':20}  {'CREATED BY':12}  MATCHERS / COMMENT")
    for s in silences:
        ends = s.ends_at.strftime("%Y-%m-%d %H:%M:%S")
        matchers = format_matchers(m.to_matcher() for m in s.matchers)
        print(
            f"{s.id:36}  {s.status.state.value:8}  {ends:20}  {s.created_by:12}  "
            f"{matchers}  {s.comment}"
        )
    return 0


def _cmd_silence_expire(args: argparse.Namespace) -> int:
    from soulwatch.alerting.silence_client import SilenceClient

    with SilenceClient(args.url, token=args.token) as client:
        for silence_id in args.ids:
            client.expire(silence_id)
            print(f"expired {silence_id}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console
    from rich.live import Live

    from soulwatch.demo.display import render
    from soulwatch.demo.run import Demo, DemoState
    from soulwatch.demo.scenarios import SCENARIOS

    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:16} {scenario.title}  → {', '.join(scenario.expect)}")
        return 0
    if args.speed <= 0:
        print("soulwatch: error: --speed must be positive", file=sys.stderr)
        return 2
    import logging

    import structlog

    # soulwatch's own info logs would scroll through the live view: warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console()
    printed = 0

    def show_log(state: DemoState) -> None:
        nonlocal printed
        for line in state.log[printed:]:
            print(line, flush=True)
        printed = len(state.log)

    try:
        if args.check:
            demo = Demo(
                args.scenario,
                speed=args.speed,
                embedded_redis=args.embedded_redis,
                on_change=show_log,
            )
            outcomes = asyncio.run(_stoppable(demo.run()))
        else:
            with Live(console=console, refresh_per_second=4, screen=False) as live:
                demo = Demo(
                    args.scenario,
                    speed=args.speed,
                    embedded_redis=args.embedded_redis,
                    on_change=lambda s: live.update(render(s)),
                )
                outcomes = asyncio.run(_stoppable(demo.run()))
    except ValueError as exc:
        print(f"soulwatch: error: {exc}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        print("soulwatch: demo stopped", file=sys.stderr)
        return 143
    print()
    for o in outcomes:
        verdict = "PASS" if o.ok else "FAIL"
        timing = ""
        if o.delivered_after is not None:
            timing = f" paged after {o.delivered_after:.0f}s of demo time"
        if o.resolved_after is not None:
            timing += f", resolved {o.resolved_after:.0f}s after the fix"
        print(f"{verdict}  {o.scenario.name}: {', '.join(o.scenario.expect)}{timing} {o.detail}")
    passed = sum(o.ok for o in outcomes)
    print(f"{passed}/{len(outcomes)} scenarios passed")
    return 0 if passed == len(outcomes) else 1


async def _stoppable(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro``; SIGTERM cancels it, so its clean-up (the demo's processes) still runs."""
    import asyncio
    import signal

    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except SoulwatchError as exc:
        print(f"soulwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

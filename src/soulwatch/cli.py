"""The ``soulwatch`` command line.

This is the only module that prints or exits. Each command is a small
function ``_cmd_<name>(args) -> int`` that calls library code and turns its
results and :class:`~soulwatch.exceptions.SoulwatchError` into output and an
exit code (0 ok, 1 a check failed, 2 a usage or input error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from soulwatch import __version__
from soulwatch.exceptions import SoulwatchError

Command = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulwatch",
        description="Monitoring and alerting for the Soulcaster platform.",
    )
    parser.add_argument("--version", action="version", version=f"soulwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    _add_monitor_commands(sub)
    return parser


def _add_monitor_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the monitor")
    run.add_argument("-c", "--config", required=True, metavar="FILE", help="soulwatch.yaml")
    run.add_argument("--data-dir", metavar="DIR", help="override data_dir")
    run.add_argument("--listen", metavar="HOST:PORT", help="override listen")
    run.add_argument(
        "--log-format", choices=("auto", "json", "console"), default="auto",
        help="log format (auto: console on a terminal, else JSON)",
    )  # fmt: skip
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check", help="validate files")
    check_sub = check.add_subparsers(dest="what", metavar="WHAT", required=True)
    check_config = check_sub.add_parser("config", help="validate a soulwatch.yaml")
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
    from soulwatch.service import configure_logging, serve

    json_logs = args.log_format == "json" or (args.log_format == "auto" and not sys.stderr.isatty())
    configure_logging(json=json_logs)
    try:
        config = load_config(args.config).with_overrides(data_dir=args.data_dir, listen=args.listen)
    except ValueError as exc:
        print(f"soulwatch: error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from soulwatch.config import load_config
    from soulwatch.service import Monitor

    config = load_config(args.file)
    groups = Monitor.check_rules(config)
    jobs = len(config.scrape_configs)
    checks = len(config.heartbeats.checks)
    print(
        f"{args.file}: OK ({jobs} scrape job(s), {len(groups)} rule group(s),"
        f" {checks} heartbeat check(s), routing {'on' if config.routing else 'off'})"
    )
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from importlib.resources import files
    from pathlib import Path

    target = Path(args.output)
    if target.exists() and not args.force:
        print(f"soulwatch: error: {target} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    text = files("soulwatch.presets").joinpath(args.preset, "soulwatch.yaml").read_text()
    target.write_text(text)
    print(f"wrote {target}; check it with: soulwatch check config {target}")
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"soulwatch {__version__}")
    return 0


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

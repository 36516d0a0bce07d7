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
from pathlib import Path

from soulwatch import __version__
from soulwatch.exceptions import SoulwatchError
from soulwatch.promql.engine import Engine
from soulwatch.promql.promqltest import Outcome, run_file

Command = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulwatch",
        description="Monitoring and alerting for the Soulcaster platform.",
    )
    parser.add_argument("--version", action="version", version=f"soulwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    _add_promql_parser(sub)
    return parser


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
    test.set_defaults(func=_cmd_promql_test)


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"soulwatch {__version__}")
    return 0


def _cmd_promql_test(args: argparse.Namespace) -> int:

    any_failed = False
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"soulwatch: error: {name}: no such file", file=sys.stderr)
            return 2
        report = run_file(path, Engine)
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
    return 1 if any_failed else 0


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

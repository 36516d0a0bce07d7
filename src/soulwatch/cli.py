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
    # `check` and `test` are shared by several areas: each adds its own WHAT.
    check = sub.add_parser("check", help="validate files").add_subparsers(
        dest="check_what", metavar="WHAT", required=True
    )
    test = sub.add_parser("test", help="run unit tests").add_subparsers(
        dest="test_what", metavar="WHAT", required=True
    )
    _add_promql_parser(sub)
    _add_rules_commands(check, test)
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


def _add_rules_commands(
    check: argparse._SubParsersAction[argparse.ArgumentParser],
    test: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    check_rules = check.add_parser(
        "rules", help="validate Prometheus rule files like `promtool check rules`"
    )
    check_rules.add_argument("files", nargs="+", metavar="FILE")
    check_rules.set_defaults(func=_cmd_check_rules)
    test_rules = test.add_parser(
        "rules", help="run rule unit tests in `promtool test rules` format"
    )
    test_rules.add_argument("files", nargs="+", metavar="FILE")
    test_rules.set_defaults(func=_cmd_test_rules)


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


def _cmd_check_rules(args: argparse.Namespace) -> int:
    from soulwatch.rules.loader import check_rule_file

    failed = False
    for path in args.files:
        print(f"Checking {path}")
        groups, problems = check_rule_file(path)
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

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
    return parser


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

"""The console entry point."""

import subprocess

from soulwatch import __version__
from tests.helpers import soulwatch_command, subprocess_env


def test_version_flag_prints_the_package_version() -> None:
    out = subprocess.run(
        soulwatch_command("--version"),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
        timeout=30,
    )
    assert out.stdout.strip() == f"soulwatch {__version__}"


def test_no_command_prints_help_and_exits_2() -> None:
    out = subprocess.run(
        soulwatch_command(),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert "usage: soulwatch" in out.stdout

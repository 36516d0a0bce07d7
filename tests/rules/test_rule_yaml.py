"""Rule files get the same strict YAML as soulwatch.yaml: `check rules` reports, never explodes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from soulwatch.rules.loader import check_rule_file
from tests.helpers import need_binary

RULES = """\
groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        expr: up == 1
"""


def test_a_duplicate_key_in_a_rule_is_refused_like_promtool(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULES)
    groups, problems = check_rule_file(path)
    assert groups == []
    assert [str(p) for p in problems] == [f"{path}:6:9: duplicate key 'expr' (first at line 5)"]
    promtool = subprocess.run(
        [need_binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert promtool.returncode == 1  # Prometheus refuses it too
    assert "already" in promtool.stdout + promtool.stderr


def test_an_alias_bomb_in_a_rule_file_is_refused(tmp_path: Path) -> None:
    lines = ['x0: &x0 ["a","a","a","a","a","a","a","a","a","a"]']
    lines += [f"x{i}: &x{i} [{','.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(lines) + "\ngroups: []\n")
    groups, problems = check_rule_file(path)
    assert groups == []
    assert len(problems) == 1
    assert "aliases expand to more than 100000 values (excessive aliasing)" in str(problems[0])

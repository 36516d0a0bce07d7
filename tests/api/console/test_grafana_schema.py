"""The shipped Grafana dashboard against Grafana's own published schema.

Grafana cannot run here, so its types stand in: the dashboard JSON, as a
TypeScript literal, must satisfy ``Dashboard`` of the ``@grafana/schema``
npm package (and each stat panel's options its stat ``Options``) under
``tsc --strict``. Object literals get TypeScript's excess-property check, so
a misspelt or unknown key fails as well as a wrong type. JSON has no enums:
each string enum of the schema is read as the union of its values.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from soulwatch.api.console.boards import preset_board_path
from tests.helpers import in_ci, need_binary

pytestmark = pytest.mark.slow

#: Pinned so that a new release of the schema is a deliberate change.
SCHEMA = "@grafana/schema@13.2.3"
TYPESCRIPT = "typescript@5.9.3"
STAT_OPTIONS = "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen"

_PRELUDE = f"""\
import type {{ Dashboard }} from "@grafana/schema";
import type {{ Options as StatOptions }} from "{STAT_OPTIONS}";

type Json<T> = T extends string
  ? `${{T}}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Json<U>>
      : T extends object
        ? {{ [K in keyof T]: Json<T[K]> }}
        : T;
"""


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with Grafana's schema package and TypeScript installed by npm."""
    need_binary("node")
    npm = need_binary("npm")
    where = tmp_path_factory.mktemp("grafana-schema")
    (where / "package.json").write_text('{"private": true}\n')
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", SCHEMA, TYPESCRIPT],
        cwd=where, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        message = f"npm could not install {SCHEMA}: {done.stderr[-2000:]}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return where


def _source(dashboard: dict[str, Any]) -> str:
    options = [p["options"] for p in dashboard["panels"] if p.get("type") == "stat"]
    literal = json.dumps(dashboard, indent=2)
    return (
        _PRELUDE
        + f"\nexport const dashboard = {literal} satisfies Json<Dashboard>;\n"
        + f"\nexport const stat = {json.dumps(options, indent=2)}"
        " satisfies Array<Partial<Json<StatOptions>>>;\n"
    )


def _tsc(where: Path, dashboards: dict[str, dict[str, Any]]) -> str:
    """``tsc``'s complaints about each dashboard (written to ``<name>.ts``)."""
    for name, dashboard in dashboards.items():
        (where / f"{name}.ts").write_text(_source(dashboard))
    done = subprocess.run(
        [str(where / "node_modules" / ".bin" / "tsc"), "--strict", "--noEmit", "--skipLibCheck",
         "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
         *(f"{name}.ts" for name in dashboards)],
        cwd=where, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def _shipped() -> dict[str, Any]:
    shipped: dict[str, Any] = json.loads(
        (preset_board_path().parent / "soulcaster.grafana.json").read_text()
    )
    return shipped


def test_the_shipped_dashboard_satisfies_grafanas_dashboard_type(schema: Path) -> None:
    assert _tsc(schema, {"shipped": _shipped()}) == ""


def test_the_check_catches_what_grafana_would_not_read(schema: Path) -> None:
    misspelt, wrong_type, unknown_value = _shipped(), _shipped(), _shipped()
    misspelt["refersh"] = "10s"
    next(p for p in wrong_type["panels"] if p["type"] == "stat")["gridPos"]["w"] = "4"
    next(p for p in unknown_value["panels"] if p["type"] == "stat")["options"]["graphMode"] = (
        "sparkline"
    )
    errors = _tsc(
        schema, {"misspelt": misspelt, "wrong_type": wrong_type, "unknown_value": unknown_value}
    ).splitlines()
    assert any(e.startswith("misspelt.ts") and "'\"refersh\"' does not exist" in e for e in errors)
    assert any(
        e.startswith("wrong_type.ts") and "'string' is not assignable to type 'number'" in e
        for e in errors
    )
    assert any(e.startswith("unknown_value.ts") and '"sparkline"' in e for e in errors)

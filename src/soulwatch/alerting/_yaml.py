"""YAML loading that remembers where every value came from.

pydantic reports errors as a path of keys (``route.routes.1.group_wait``);
this module maps such a path back to the line and column in the file, so a
bad ``alertmanager.yml`` is reported as ``alertmanager.yml:14:7: ...``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from soulwatch.config_loading import compose_checked
from soulwatch.exceptions import ConfigError

Path = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_located(
    text: str, *, file: str | None, env: Mapping[str, str] | None = None
) -> tuple[Any, dict[Path, tuple[int, int]]]:
    """Parse YAML into plain Python data plus a map of path -> (line, column), 1-based.

    ``${VAR}`` references inside string values are replaced from ``env``
    (default: the process environment); a missing variable is an error at its line.
    """
    node = compose_checked(text, file)
    positions: dict[Path, tuple[int, int]] = {}
    if node is None:
        return {}, positions
    environ = os.environ if env is None else env
    return _convert(node, (), positions, file, environ), positions


def _convert(
    node: yaml.Node,
    path: Path,
    positions: dict[Path, tuple[int, int]],
    file: str | None,
    env: Mapping[str, str],
) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r}",
                    file=file,
                    line=key_node.start_mark.line + 1,
                    column=key_node.start_mark.column + 1,
                )
            # Errors about a key itself (unknown key) point at the key.
            positions[(*path, key, "__key__")] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = _convert(value_node, (*path, key), positions, file, env)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, i), positions, file, env) for i, item in enumerate(node.value)
        ]
    value = _scalar(node)
    if isinstance(value, str) and "${" in value:
        value = _expand(value, env, file, node)
    return value


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _expand(value: str, env: Mapping[str, str], file: str | None, node: yaml.Node) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ConfigError(
                f"environment variable {name} is not set",
                file=file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        return env[name]

    return _ENV_REF.sub(repl, value)


def locate(
    positions: Mapping[Path, tuple[int, int]], loc: Iterable[str | int]
) -> tuple[int, int] | None:
    """The position of the longest prefix of ``loc`` that exists in the file."""
    path: Path = tuple(loc)
    while True:
        if path in positions:
            return positions[path]
        if not path:
            return None
        path = path[:-1]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``' (did you mean "x"?)'`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""

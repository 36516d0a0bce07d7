"""Reading YAML with positions, and turning validation errors into ``file:line:col``.

:func:`load_yaml` returns the plain data of a YAML document plus a map from
each path inside it (a tuple of keys and indexes) to where its key and value
start, so that :func:`validation_error` can point at the exact line of a bad
setting. Strings get ``${VAR}`` expanded from the environment and keys ending
in ``_env`` are replaced by the variable's value (``token_env: SW_TOKEN`` reads
``token`` from ``$SW_TOKEN``), so secrets never need to be written inline.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from soulwatch.exceptions import ConfigError

Path_ = tuple[str | int, ...]

# Only names that start with a letter or underscore: Prometheus relabel
# replacements such as "${1}" must pass through untouched.
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Positions:
    """Where each setting of a loaded document starts (1-based line and column)."""

    file: str
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        """The position of ``path`` (its key if ``key``), or of its nearest known parent."""
        table = self.keys if key else self.values
        for n in range(len(path), -1, -1):
            sub = path[:n]
            if sub in table:
                return table[sub]
            if sub in self.values:
                return self.values[sub]
        return None, None

    def error(self, path: Path_, message: str, *, key: bool = False) -> ConfigError:
        """A :class:`ConfigError` pointing at ``path``."""
        line, column = self.at(path, key=key)
        return ConfigError(message, file=self.file, line=line, column=column)


def load_yaml(
    text: str, file: str, environ: Mapping[str, str], model: type[BaseModel] | None = None
) -> tuple[dict[str, Any], Positions]:
    """Parse one YAML mapping document; expand environment references.

    Raises :class:`ConfigError` with the position of a syntax error, a missing
    environment variable, or a top level that is not a mapping.
    """
    positions = Positions(file)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}", file=file, line=line, column=column
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if data is None:
        return {}, positions
    if not isinstance(data, dict) or node is None:
        raise ConfigError("the top level must be a mapping of settings", file=file, line=1)
    _record(node, (), positions)
    expanded = _expand(data, (), positions, environ, model)
    assert isinstance(expanded, dict)
    return expanded, positions


def _record(node: yaml.Node, path: Path_, positions: Positions) -> None:
    positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else str(knode.value)
            sub = (*path, key)
            positions.keys[sub] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            _record(vnode, sub, positions)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, (*path, i), positions)


def _expand(
    value: Any, path: Path_, positions: Positions, environ: Mapping[str, str], model: Any
) -> Any:
    if isinstance(value, str):
        return _expand_str(value, path, positions, environ)
    if isinstance(value, list):
        return [_expand(v, (*path, i), positions, environ, model) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    fields = _field_map(model)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        sub = (*path, key)
        target = key.removesuffix("_env") if isinstance(key, str) else ""
        # ``x_env`` names the variable holding ``x`` -- unless the model reads
        # ``x_env`` itself (then the component resolves it).
        if (
            key != target
            and isinstance(item, str)
            and key not in fields
            and (model is None or target in fields)
        ):
            if target in value:
                raise positions.error(sub, f"set either {target!r} or {key!r}, not both", key=True)
            if item not in environ:
                raise positions.error(sub, f"environment variable {item!r} ({key}) is not set")
            out[target] = environ[item]
            key_pos = positions.at(sub, key=True)
            value_pos = positions.at(sub)
            if key_pos[0] is not None and value_pos[0] is not None:
                positions.keys.setdefault((*path, target), key_pos)  # type: ignore[arg-type]
                positions.values.setdefault((*path, target), value_pos)  # type: ignore[arg-type]
            continue
        out[key] = _expand(item, sub, positions, environ, fields.get(key))
    return out


def _field_map(model: Any) -> dict[str, Any]:
    """Key -> the model inside that field's type (or ``None``), for a pydantic model."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return {}
    out: dict[str, Any] = {}
    # A section whose extra keys belong to another model (``alerting``'s inline keys).
    extra = getattr(model, "extra_keys_model", None)
    if extra is not None:
        out.update(_field_map(extra))
    for name, info in model.model_fields.items():
        out[info.alias or name] = _model_in(info.annotation)
    return out


def _expand_str(text: str, path: Path_, positions: Positions, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            raise positions.error(path, f"environment variable {name!r} is not set")
        return environ[name]

    if "$" not in text:
        return text
    return _ENV_REF.sub(replace, text)


def validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    positions: Positions,
    *,
    prefix: Path_ = (),
) -> ConfigError:
    """The first error of ``exc`` as a positioned :class:`ConfigError`.

    An unknown key becomes ``unknown setting 'x' (did you mean 'y'?)``, with
    the candidates taken from the model the key was found in.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc: Path_ = tuple(p for p in first["loc"] if isinstance(p, str | int))
    inner = _data_path(loc)
    path = (*prefix, *inner)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        known = _fields_at(model, inner[:-1])
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        where = ".".join(str(p) for p in path[:-1]) or "the top level"
        message = f"unknown setting {name!r} in {where}{suggestion}{more}"
        return positions.error(path, message, key=True)
    dotted = ".".join(str(p) for p in path) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    return positions.error(path, f"{dotted}: {msg}{more}")


def _data_path(loc: Path_) -> Path_:
    # pydantic adds the names of union members and validator tags to ``loc``;
    # drop the parts that are not keys of the document.
    return tuple(
        p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
    )


def _fields_at(model: type[BaseModel], path: Path_) -> list[str]:
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        info = next((f for n, f in fields.items() if part in (f.alias or n, n)), None)
        if info is None:
            return []
        current = _model_in(info.annotation)
    fields = getattr(current, "model_fields", None)
    if not fields:
        return []
    return [info.alias or name for name, info in fields.items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

"""Reading YAML with positions, and turning validation errors into ``file:line:col``.

:func:`load_yaml` returns the plain data of a YAML document plus a map from
each path inside it (a tuple of keys and indexes) to where its key and value
start, so that :func:`validation_error` can point at the exact line of a bad
setting. Strings get ``${VAR}`` expanded from the environment and keys ending
in ``_env`` are replaced by the variable's value (``token_env: SW_TOKEN`` reads
``token`` from ``$SW_TOKEN``), so secrets never need to be written inline;
every unset variable is reported in one error.

:func:`compose_checked` is the one way soulwatch reads YAML it is given
(soulwatch.yaml, alertmanager.yml, probe and rule files): duplicate keys,
recursive aliases, alias bombs and absurd nesting are refused with a
position before anything is built from the document.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
    node = compose_checked(text, file)
    data = construct(node) if node is not None else None
    if data is None:
        return {}, positions
    if not isinstance(data, dict) or node is None:
        raise ConfigError("the top level must be a mapping of settings", file=file, line=1)
    _record(node, (), positions)
    missing: list[_Missing] = []
    expanded = _expand(data, (), positions, _Env(environ, missing), model)
    assert isinstance(expanded, dict)
    if missing:
        raise _missing_error(missing, positions)
    return expanded, positions


@dataclass(frozen=True)
class _Missing:
    variable: str
    path: Path_
    key: str | None  # the ``*_env`` key naming it, or None for ``${VAR}``


@dataclass
class _Env:
    """The environment, and the variables the document names that are not set."""

    values: Mapping[str, str]
    missing: list[_Missing]

    def get(self, name: str, path: Path_, key: str | None) -> str | None:
        if name in self.values:
            return self.values[name]
        self.missing.append(_Missing(name, path, key))
        return None


def _missing_error(missing: list[_Missing], positions: Positions) -> ConfigError:
    # Every unset variable at once: fixing them one run at a time is tedious.
    first = missing[0]
    if len(missing) == 1:
        what = f" ({first.key})" if first.key else ""
        return positions.error(
            first.path, f"environment variable {first.variable!r}{what} is not set"
        )
    lines = []
    for item in missing:
        line, _ = positions.at(item.path)
        where = f"line {line}" if line is not None else ".".join(map(str, item.path))
        what = f", {item.key}" if item.key else ""
        lines.append(f"  {item.variable} ({where}{what})")
    names = sorted({m.variable for m in missing})
    message = f"{len(names)} environment variables are not set:\n" + "\n".join(lines)
    return positions.error(first.path, message)


#: The most values a document may hold once its aliases are expanded. A real
#: config has a few thousand; an "alias bomb" (``&a [*b, *b, ...]`` nested) has
#: billions and would exhaust memory while being read.
MAX_YAML_VALUES = 100_000
#: The deepest nesting accepted; a real config is a dozen levels deep.
MAX_YAML_DEPTH = 100


def compose_checked(text: str, file: str | None) -> yaml.Node | None:
    """The YAML node graph of ``text``, checked before anything is built from it.

    Raises :class:`ConfigError` at the position of a syntax error, of a key
    given twice in one mapping (YAML says keys are unique; silently keeping the
    last one hides mistakes such as two ``receivers:``), of a recursive alias,
    or when aliases expand past :data:`MAX_YAML_VALUES` values.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError(
            f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep", file=file
        ) from None
    check_node(node, file)
    return node


def check_node(node: yaml.Node | None, file: str | None) -> None:
    """Refuse duplicate keys, recursive aliases and alias expansion past the bound.

    Raises :class:`ConfigError` at the offending node (see :func:`compose_checked`).
    """
    if node is not None:
        _Checker(file).size(node)


def construct(node: yaml.Node) -> Any:
    """Plain Python data of a node checked by :func:`compose_checked`."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


class _Checker:
    """Counts values with aliases expanded, visiting each distinct node once."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()

    def _error(self, message: str, node: yaml.Node) -> ConfigError:
        mark = node.start_mark
        return ConfigError(message, file=self.file, line=mark.line + 1, column=mark.column + 1)

    def size(self, node: yaml.Node, depth: int = 0) -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in self.open:
            raise self._error("invalid YAML: an alias refers to a node that contains it", node)
        if depth > MAX_YAML_DEPTH:
            raise self._error(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep", node)
        self.open.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            self._unique_keys(node)
            for knode, vnode in node.value:
                total += self.size(knode, depth + 1) + self.size(vnode, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += self.size(item, depth + 1)
        if total > MAX_YAML_VALUES:
            raise self._error(
                f"invalid YAML: aliases expand to more than {MAX_YAML_VALUES} values"
                " (excessive aliasing)",
                node,
            )
        self.open.discard(key)
        self.sizes[key] = total
        return total

    def _unique_keys(self, node: yaml.MappingNode) -> None:
        seen: dict[str, yaml.Node] = {}
        for knode, _ in node.value:
            if not isinstance(knode, yaml.ScalarNode) or knode.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.setdefault(knode.value, knode)
            if first is not knode:
                raise self._error(
                    f"duplicate key {knode.value!r} (first at line {first.start_mark.line + 1})",
                    knode,
                )


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


def _expand(value: Any, path: Path_, positions: Positions, environ: _Env, model: Any) -> Any:
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
            out[target] = environ.get(item, sub, key) or ""
            key_pos = positions.at(sub, key=True)
            value_pos = positions.at(sub)
            if key_pos[0] is not None and value_pos[0] is not None:
                positions.keys.setdefault((*path, target), key_pos)  # type: ignore[arg-type]
                positions.values.setdefault((*path, target), value_pos)  # type: ignore[arg-type]
            continue
        if key != target and isinstance(item, str) and key in fields:
            # A component reads this variable itself (a probe's ``url_env``):
            # it must be set all the same, and is reported with the others.
            environ.get(item, sub, key)
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


def _expand_str(text: str, path: Path_, positions: Positions, environ: _Env) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return environ.get(name, path, None) or ""

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


class PlaceholderEnv(Mapping[str, str]):
    """The environment, where an unset variable reads as a placeholder value.

    For commands that inspect a config without using its secrets (``routes
    test``, ``routes export``): the placeholder is a URL so that URL settings
    still validate, and :attr:`placeholders` lists the variables it stood for.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.placeholders: set[str] = set()

    def __getitem__(self, name: str) -> str:
        if name in self._environ:
            return self._environ[name]
        self.placeholders.add(name)
        return f"https://unset.invalid/{name}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def top_level_keys(path: Path) -> set[str]:
    """The top-level keys of the YAML mapping in ``path`` (empty if it is not one)."""
    try:
        node = compose_checked(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(path)) from None
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}

"""Go's value formatting, for templates whose output must match Prometheus's.

Prometheus renders annotations with Go's ``text/template``, so ``{{ $value }}``
prints a float the way Go's ``%v`` does (``1e+06``, ``0.1``, ``+Inf``) and
``printf`` follows Go's verbs. This module reproduces the common cases.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

_VERB_RE = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _digits(value: float) -> tuple[str, int]:
    """Shortest round-tripping digits of ``abs(value)`` and the decimal-point position.

    ``value == 0.<digits> * 10**point``.
    """
    text = repr(abs(value))
    if "e" in text:
        mant, _, exp = text.partition("e")
        digits = mant.replace(".", "").rstrip("0") or "0"
        return digits, int(exp) + 1
    whole, _, frac = text.partition(".")
    whole = whole.lstrip("0")
    if whole:
        return (whole + frac).rstrip("0") or "0", len(whole)
    stripped = frac.lstrip("0")
    return stripped.rstrip("0") or "0", -(len(frac) - len(stripped))


def format_float(value: float) -> str:
    """Go's ``%v`` of a float64."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, point = _digits(value)
    sign = "-" if value < 0 else ""
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go: shortest %g switches to %e at 1e+06
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_g(value: float, precision: int) -> str:
    """Go's ``%.Ng``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{precision}g}"


def format_value(value: object) -> str:
    """Go's ``%v`` of a template value."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "map[string]string" if isinstance(value, Mapping) else "<nil>"


def sprintf(fmt: str, args: Sequence[object]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (v s d f e g q x t %)."""
    out: list[str] = []
    pos = 0
    index = 0
    for match in _VERB_RE.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, prec, verb = match.groups()
        if _too_large(width) or _too_large(prec):
            # Go stops reading a width past a million and gives up on the rest
            # of the format: a template cannot make it allocate gigabytes.
            out.append("%!(NOVERB)")
            pos = len(fmt)
            break
        if verb == "%":
            out.append("%")
            continue
        if index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[index]
        index += 1
        out.append(_format_one(arg, flags, width, prec, verb))
    out.append(fmt[pos:])
    if index < len(args):
        extra = ", ".join(f"{_go_type(a)}={format_value(a)}" for a in args[index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _too_large(digits: str | None) -> bool:
    """Whether Go's ``fmt`` refuses this width or precision (it stops past 1e6)."""
    num = 0
    for ch in digits or "":
        if num > 1_000_000:
            return True
        num = num * 10 + int(ch)
    return False


def _format_one(arg: object, flags: str, width: str | None, prec: str | None, verb: str) -> str:
    spec = flags.replace("#", "") + (width or "")
    bad = f"%!{verb}({_go_type(arg)}={format_value(arg)})"
    if verb == "v":
        return _pad(format_value(arg), flags, width)
    if verb == "s":
        text = format_value(arg)
        return _pad(text[: int(prec)] if prec else text, flags, width)
    if verb == "q":
        return _pad(json.dumps(format_value(arg), ensure_ascii=False), flags, width)
    if verb == "t":
        return _pad(format_value(arg), flags, width) if isinstance(arg, bool) else bad
    if verb in "dxXob":
        if isinstance(arg, bool) or not isinstance(arg, int):
            return bad
        return format(arg, spec + ("d" if verb == "d" else verb))
    if verb in "feEgG":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad
        number = float(arg)
        if math.isnan(number) or math.isinf(number):
            return _pad(format_float(number), flags, width)
        if verb in "gG" and prec is None:
            return _pad(format_float(number), flags, width)
        precision = prec if prec is not None else "6"
        return format(number, f"{spec}.{precision}{verb}")
    return bad


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width:
        return text
    return text.ljust(int(width)) if "-" in flags else text.rjust(int(width))

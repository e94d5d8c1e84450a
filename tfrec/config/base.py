"""What every config section shares: one-line errors, pydantic validation, deprecation lines.

The sections are standard dataclasses (``dataclasses.replace`` / ``asdict`` work on them, and building one in Python
checks nothing) whose field types carry their constraints as pydantic metadata (``Annotated[int, Field(gt=0)]``);
a section class sets ``__pydantic_config__ = CONFIG`` (unknown keys are errors). :func:`validate_as` validates a
mapping with pydantic v2 (types, ranges, choices, unknown keys, the model union by name) and builds the section;
a section's :meth:`Section.rules` adds the checks that read several fields. Every failure is a
:class:`ConfigError` of one line that names the key and the value received.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import typing
from typing import Any, Dict, Optional, Tuple

from pydantic import ConfigDict, TypeAdapter, ValidationError

#: The pydantic config of every section: an unknown key is an error; floats take integers.
CONFIG = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the key and the value received."""


def check(ok: bool, key: str, value: Any, message: str) -> None:
    """Raises ``ConfigError("`key` message. Received: key=value")`` unless ``ok`` (the one-line config error)."""
    if not ok:
        raise ConfigError(f"`{key}` {message}. Received: {key}={value!r}")


_DEPRECATED_SEEN: set = set()


def deprecated(key: str, value: Any, replacement: str) -> None:
    """Prints the one-line deprecation message of an older config key or value (once per process and key): it
    still works for this release; ``replacement`` says what to write instead."""
    note(f"deprecated config: {key}={value!r} is now {replacement} (the old form is read for one more release)")


def note(message: str) -> None:
    """Prints ``tfrec: <message>`` on stderr once per process (deprecation lines)."""
    if message in _DEPRECATED_SEEN:
        return
    _DEPRECATED_SEEN.add(message)
    print(f"tfrec: {message}", file=sys.stderr)


class Section:
    """Mixin of the config sections: :meth:`validate` (types and ranges with pydantic, then :meth:`rules`).

    ``config_key`` is the section's dotted key in a run config (``simulation.funnel``), the prefix of its errors.
    """

    config_key = ""

    def rules(self) -> None:
        """Checks that read several fields (or the loss registry); raises :class:`ConfigError`. The nested
        sections' rules run too (:func:`run_rules`)."""

    def validate(self) -> None:
        """Validates the section as it is now (after changes made in Python): raises :class:`ConfigError`."""
        validate_as(type(self), dataclasses.asdict(self), self.config_key)


def run_rules(obj: Any) -> None:
    """:meth:`Section.rules` of ``obj`` and of every section inside it, innermost first."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and isinstance(value, Section):
            run_rules(value)
    if isinstance(obj, Section):
        obj.rules()


@functools.lru_cache(maxsize=None)
def adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def validate_as(cls, values: Any, prefix: str = ""):
    """``values`` (a mapping) validated as the section class ``cls`` (pydantic), then its :meth:`Section.rules`.

    Raises:
      ConfigError: the first problem, one line naming the key (``prefix`` + the key inside ``cls``).
    """
    try:
        obj = adapter(cls).validate_python(values)
    except ValidationError as e:
        raise ConfigError(error_line(e.errors()[0], cls, prefix)) from None
    run_rules(obj)
    return obj


# ------------------------------------------------------------------------------------------------ error lines


def _hints(cls) -> Dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _strip(tp):
    """``(base type, metadata)`` of an ``Annotated`` type (of ``X`` for ``Optional[X]``)."""
    if typing.get_origin(tp) is typing.Union:
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) == 1 and len(typing.get_args(tp)) == 2:
            tp = members[0]
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        return args[0], list(args[1:])
    return tp, []


def _union_members(tp) -> Dict[str, Any]:
    """tag -> class of a tagged union (the model union), else {}."""
    base, _ = _strip(tp)
    if typing.get_origin(base) is not typing.Union:
        return {}
    out = {}
    for member in typing.get_args(base):
        cls, meta = _strip(member)
        for m in meta:
            if type(m).__name__ == "Tag":
                out[m.tag] = cls
    return out


def _walk(cls, loc: Tuple) -> Tuple[str, Any, Any]:
    """``(dotted key, the field's annotation, the dataclass holding it)`` of an error location (union tags
    skipped, list indices as ``[i]``)."""
    parts, field_tp, owner = [], None, cls
    tp = cls
    i = 0
    while i < len(loc):
        item = loc[i]
        members = _union_members(tp) if field_tp is not None else {}
        if members and item in members:
            tp, i = members[item], i + 1
            continue
        base, _ = _strip(tp)
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            args = typing.get_args(base)
            tp, field_tp = (args[0] if args else Any), None
        elif dataclasses.is_dataclass(base):
            owner = base
            field_tp = _hints(base).get(item)
            parts.append(str(item))
            tp = field_tp if field_tp is not None else Any
        else:
            parts.append(str(item))
            tp, field_tp = Any, None
        i += 1
    return ".".join(parts), field_tp, owner


def _bounds(meta) -> Optional[str]:
    """``(0, 1]``-style text of a field with a lower and an upper bound, else None."""
    lo = hi = None
    for m in meta:
        # annotated_types' Gt / Ge / Lt / Le (pydantic's constraint metadata), read by their one attribute.
        for c in getattr(m, "metadata", [m]):
            if hasattr(c, "gt"):
                lo = f"({c.gt}"
            elif hasattr(c, "ge"):
                lo = f"[{c.ge}"
            elif hasattr(c, "lt"):
                hi = f"{c.lt})"
            elif hasattr(c, "le"):
                hi = f"{c.le}]"
    return f"{lo}, {hi}" if lo and hi else None


_SIMPLE = {
    "int_parsing": "must be an integer", "int_type": "must be an integer", "int_from_float": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be a string", "list_type": "must be a list", "tuple_type": "must be a list",
    "dict_type": "must be a mapping", "dataclass_type": "must be a mapping", "dataclass_args_type": "must be a mapping",
    "model_type": "must be a mapping", "union_tag_not_found": "must be a mapping",
    "missing_argument": "is required", "missing": "is required", "finite_number": "must be a finite number",
}
_BOUND = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than": ("<", "lt"),
          "less_than_equal": ("<=", "le")}


def _choices(text: str) -> str:
    """``'a', 'b' or 'c'`` (pydantic's expected values) -> ``one of a, b, c``; two values -> ``a or b``."""
    values = re.findall(r"'([^']*)'", text) or [v for v in re.split(r", | or ", text) if v]
    return " or ".join(values) if len(values) == 2 else "one of " + ", ".join(values)


def error_line(err: Dict[str, Any], cls, prefix: str = "") -> str:
    """One line for a pydantic error of validating ``cls``: "`key` must ... Received: key=value"."""
    loc = tuple(err.get("loc", ()))
    kind, ctx, value = err.get("type", ""), err.get("ctx") or {}, err.get("input")
    dotted, field_tp, owner = _walk(cls, loc)
    key = ".".join(p for p in (prefix, dotted) if p)
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        known = sorted(f.name for f in dataclasses.fields(owner)) if dataclasses.is_dataclass(owner) else []
        return f"unknown config key `{key}`; known keys in this section: {known}"
    if kind == "union_tag_invalid":
        key = f"{key}.name"
        return f"`{key}` must be {_choices(ctx.get('expected_tags', ''))}. Received: {key}={ctx.get('tag')!r}"
    if kind == "value_error":
        message = str(ctx.get("error", err.get("msg", "")))
        message = message[len("Value error, "):] if message.startswith("Value error, ") else message
        return message if message.startswith("`") or " `" in message[:40] else f"`{key}` {message}"
    if kind in _BOUND:
        sign, name = _BOUND[kind]
        span = _bounds(_strip(field_tp)[1]) if field_tp is not None and not dotted.endswith("]") else None
        text = f"must be in {span}" if span else f"must be {sign} {ctx.get(name)}"
    elif kind == "literal_error":
        text = f"must be {_choices(str(ctx.get('expected', '')))}"
    elif kind == "too_short":
        text = f"must have at least {ctx.get('min_length')} item(s)"
    else:
        text = _SIMPLE.get(kind) or str(err.get("msg", kind)).lower()
    return f"`{key}` {text}. Received: {key}={value!r}"

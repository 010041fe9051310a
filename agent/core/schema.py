"""Schema-first config: YAML mappings become frozen dataclasses, or a list of located errors.

Every problem is reported at once with its `file:line:column` (borgmatic's idea): unknown keys
(with a did-you-mean), wrong types, bad durations, bad regexes, missing required keys. The
dataclass *is* the schema — its field names are the config keys, its type hints the types:

    @dataclass(frozen=True)
    class TcpConfig:
        address: str
        timeout: Duration = Duration(5)

Supported hints: bool, int, float, str, Duration, Regex, Literal[...], X | None, list[X],
tuple[X, ...], dict[str, X] and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from hostwarden.agent.core.units import parse_duration
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList

T = TypeVar("T")

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 80, 80, 5, 5, 2


def short(value: Any) -> str:
    """A bounded repr for messages: a value may be huge (or an alias bomb)."""
    return _REPR.repr(value)


class Duration(float):
    """Seconds, written in config as 10s / 5m / 1h (or a plain number of seconds)."""


class Regex(str):
    """A string that must compile as a Python regular expression (anchored by the user, not by us)."""


@dataclass(frozen=True, slots=True)
class Issue:
    loc: Loc
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"


class ConfigErrors(Exception):
    """Raised with every problem found in one load; str() is one `file:line:col: problem` per line."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.loc.file, i.loc.line, i.loc.col))
        super().__init__("\n".join(str(i) for i in self.issues))


class Errors:
    """Collects issues while building; `raise_if_any()` at the end of a load."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, loc: Loc, message: str) -> None:
        self.issues.append(Issue(loc, message))

    def __bool__(self) -> bool:
        return bool(self.issues)

    def raise_if_any(self) -> None:
        if self.issues:
            raise ConfigErrors(self.issues)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _type_name(tp: Any) -> str:
    if tp is Duration:
        return "a duration (e.g. 10s, 5m)"
    if tp is Regex:
        return "a regular expression"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


_MISSING = object()


def convert(tp: Any, value: Any, loc: Loc, errors: Errors, path: str) -> Any:
    """Convert one YAML value to `tp`; on failure record an issue and return _MISSING."""
    origin = typing.get_origin(tp)
    where = f"{path}: " if path else ""
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return convert(non_none[0], value, loc, errors, path)
        for a in non_none:  # first that fits without errors
            trial = Errors()
            out = convert(a, value, loc, trial, path)
            if not trial:
                return out
        errors.add(loc, f"{where}expected {' or '.join(_type_name(a) for a in non_none)}, got {short(value)}")
        return _MISSING
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        errors.add(loc, f"{where}must be one of {', '.join(map(repr, allowed))}, got {short(value)}"
                   + did_you_mean(str(value), map(str, allowed)))
        return _MISSING
    if tp is Any:
        return value
    if tp is Duration:
        try:
            return Duration(parse_duration(value))
        except ValueError as e:
            errors.add(loc, f"{where}{e}")
            return _MISSING
    if tp is Regex:
        if not isinstance(value, str):
            errors.add(loc, f"{where}expected a regular expression string, got {short(value)}")
            return _MISSING
        try:
            re.compile(value)
        except re.error as e:
            errors.add(loc, f"{where}invalid regular expression {short(value)}: {e}")
            return _MISSING
        return Regex(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        errors.add(loc, f"{where}expected true or false, got {short(value)}")
        return _MISSING
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        errors.add(loc, f"{where}expected an integer, got {short(value)}")
        return _MISSING
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        errors.add(loc, f"{where}expected a number, got {short(value)}")
        return _MISSING
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # port numbers, versions: accept and stringify
        errors.add(loc, f"{where}expected a string, got {short(value)}")
        return _MISSING
    if origin in (list, tuple):
        if not isinstance(value, list):
            errors.add(loc, f"{where}expected a list, got {short(value)}")
            return _MISSING
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        out = []
        for i, item in enumerate(value):
            iloc = value.item_loc(i) if isinstance(value, LocList) else loc
            got = convert(item_tp, item, iloc, errors, f"{path}[{i}]")
            if got is not _MISSING:
                out.append(got)
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            errors.add(loc, f"{where}expected a mapping, got {short(value)}")
            return _MISSING
        _key_tp, val_tp = typing.get_args(tp) or (str, Any)
        out_d = {}
        for k, v in value.items():
            vloc = value.value_loc(k) if isinstance(value, LocDict) else loc
            got = convert(val_tp, v, vloc, errors, f"{path}.{k}" if path else str(k))
            if got is not _MISSING:
                out_d[str(k)] = got
        return out_d
    if dataclasses.is_dataclass(tp):
        return build(tp, value, errors, loc=loc, path=path)
    raise TypeError(f"schema: unsupported type {tp!r}")


def build(cls: type[T], node: Any, errors: Errors, *, loc: Loc, path: str = "",
          ignore: typing.Collection[str] = ()) -> Any:
    """Build dataclass `cls` from a YAML mapping; unknown keys, type errors and missing keys are recorded.

    `ignore` names keys handled by the caller (e.g. a `type:` discriminator). Returns _MISSING when the
    node could not be built at all.
    """
    if node is None:
        node = LocDict()
        node.loc, node.key_locs, node.value_locs = loc, {}, {}
    if not isinstance(node, dict):
        errors.add(loc, f"{path + ': ' if path else ''}expected a mapping, got {short(node)}")
        return _MISSING
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    key_of = {_key_name(f): name for name, f in fields.items()}
    kwargs: dict[str, Any] = {}
    nloc = getattr(node, "loc", loc)
    ok = True
    for key, value in node.items():
        kloc = node.key_loc(key) if isinstance(node, LocDict) else nloc
        vloc = node.value_loc(key) if isinstance(node, LocDict) else nloc
        if key in ignore:
            continue
        fname = key_of.get(key)
        if fname is None:
            here = f"{path}." if path else ""
            errors.add(kloc, f"unknown key '{here}{key}'" + did_you_mean(str(key), key_of))
            ok = False
            continue
        got = convert(hints[fname], value, vloc, errors, f"{path}.{key}" if path else str(key))
        if got is _MISSING:
            ok = False
        else:
            kwargs[fname] = got
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if _key_name(f) not in node:
                errors.add(nloc, f"{path + ': ' if path else ''}missing required key {_key_name(f)!r}")
            ok = False
    if not ok:
        return _MISSING
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as e:
        errors.add(nloc, f"{path + ': ' if path else ''}{e}")
        return _MISSING
    check = getattr(obj, "validate", None)
    if callable(check):
        for problem in check() or ():
            errors.add(nloc, f"{path + ': ' if path else ''}{problem}")
            ok = False
    return obj if ok else _MISSING


def _key_name(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def build_tagged(registry: Mapping[str, Callable[[], type]], node: Any, errors: Errors, *, loc: Loc,
                 path: str, tag: str = "type") -> Any:
    """Build one item of a list whose `type:` picks the dataclass (checks, ticket backends)."""
    if not isinstance(node, dict):
        errors.add(loc, f"{path}: expected a mapping, got {short(node)}")
        return _MISSING
    kind = node.get(tag)
    nloc = getattr(node, "loc", loc)
    if kind is None:
        errors.add(nloc, f"{path}: missing required key {tag!r} (one of {', '.join(sorted(registry))})")
        return _MISSING
    if kind not in registry:
        tloc = node.value_loc(tag) if isinstance(node, LocDict) else nloc
        errors.add(tloc, f"{path}: unknown {tag} {kind!r}" + did_you_mean(str(kind), registry)
                   + f"; known: {', '.join(sorted(registry))}")
        return _MISSING
    return build(registry[kind](), node, errors, loc=nloc, path=path, ignore=(tag,))


MISSING = _MISSING

"""YAML loading that remembers where every mapping, key and list item came from.

Every config or rule error must say `file:line:column: problem`; PyYAML knows the marks while
composing, so we build dict/list subclasses that carry them. Duplicate keys are errors (PyYAML
silently keeps the last one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Loc:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class LocDict(dict):
    """A mapping that knows its own location and each key's and value's location."""

    loc: Loc
    key_locs: dict[Any, Loc]
    value_locs: dict[Any, Loc]

    def key_loc(self, key: Any) -> Loc:
        return self.key_locs.get(key, self.loc)

    def value_loc(self, key: Any) -> Loc:
        return self.value_locs.get(key, self.key_loc(key))


class LocList(list):
    loc: Loc
    item_locs: list[Loc]

    def item_loc(self, i: int) -> Loc:
        return self.item_locs[i] if 0 <= i < len(self.item_locs) else self.loc


class YAMLSourceError(Exception):
    """A YAML document that cannot be read; carries the location of the problem."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.message = message


def _loc(file: str, mark: yaml.Mark | None) -> Loc:
    if mark is None:
        return Loc(file, 1, 1)
    return Loc(file, mark.line + 1, mark.column + 1)


def loc_of(node: object, default: Loc) -> Loc:
    return getattr(node, "loc", default)


class _Loader(yaml.SafeLoader):
    filename = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    out = LocDict()
    out.loc = _loc(loader.filename, node.start_mark)
    out.key_locs = {}
    out.value_locs = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise YAMLSourceError(_loc(loader.filename, key_node.start_mark), "mapping key is not a scalar") from None
        if key in out:
            first = out.key_locs[key]
            raise YAMLSourceError(
                _loc(loader.filename, key_node.start_mark),
                f"duplicate key {key!r} (first defined at line {first.line})",
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_locs[key] = _loc(loader.filename, key_node.start_mark)
        out.value_locs[key] = _loc(loader.filename, value_node.start_mark)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList(loader.construct_object(child, deep=True) for child in node.value)
    out.loc = _loc(loader.filename, node.start_mark)
    out.item_locs = [_loc(loader.filename, child.start_mark) for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document; raise YAMLSourceError with file:line:col on any syntax problem."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except YAMLSourceError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or "invalid YAML"
        if e.context:
            problem = f"{e.context}: {problem}" if e.problem else e.context
        raise YAMLSourceError(_loc(filename, mark), f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise YAMLSourceError(Loc(filename, 1, 1), f"YAML error: {e}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise YAMLSourceError(Loc(path, 1, 1), f"cannot read file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise YAMLSourceError(Loc(path, 1, 1), f"file is not UTF-8: {e.reason}") from None
    return load_yaml(text, path)

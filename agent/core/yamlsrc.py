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


MAX_EXPANDED_NODES = 1_000_000  # a config is thousands of values; an alias bomb is billions


def load_yaml(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document; raise YAMLSourceError with file:line:col on any problem.

    Non-printable characters, nesting too deep for the parser, and alias bombs (a document whose
    aliases expand to more than MAX_EXPANDED_NODES values) are errors like any syntax error.
    """
    loader = None
    try:
        loader = _Loader(text)  # PyYAML checks for non-printable characters here already
        loader.filename = filename
        data = loader.get_single_data()
    except YAMLSourceError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or "invalid YAML"
        if e.context:
            problem = f"{e.context}: {problem}" if e.problem else e.context
        raise YAMLSourceError(_loc(filename, mark), f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise YAMLSourceError(Loc(filename, line, col),
                              f"YAML error: {e.reason} character #x{e.character:04x} is not allowed") from None
    except yaml.YAMLError as e:
        raise YAMLSourceError(Loc(filename, 1, 1), f"YAML error: {e}") from None
    except RecursionError:
        raise YAMLSourceError(Loc(filename, 1, 1), "YAML error: nesting too deep") from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_expansion(data, filename)
    return data


def _check_expansion(data: Any, filename: str) -> None:
    """Count the values the document expands to, each shared (aliased) node once per use, memoised."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        got = sizes.get(id(node))
        if got is None:
            sizes[id(node)] = 1  # a recursive alias counts once
            children = node.values() if isinstance(node, dict) else node
            got = 1
            for child in children:
                got += size(child)
                if got > MAX_EXPANDED_NODES:
                    break
            sizes[id(node)] = got
        return got

    try:
        total = size(data)
    except RecursionError:
        raise YAMLSourceError(Loc(filename, 1, 1), "YAML error: nesting too deep") from None
    if total > MAX_EXPANDED_NODES:
        raise YAMLSourceError(getattr(data, "loc", Loc(filename, 1, 1)),
                              f"YAML error: the document expands to more than {MAX_EXPANDED_NODES:,} values "
                              "through aliases (an alias bomb?)")


def load_yaml_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise YAMLSourceError(Loc(path, 1, 1), f"cannot read file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise YAMLSourceError(Loc(path, 1, 1), f"file is not UTF-8: {e.reason}") from None
    return load_yaml(text, path)

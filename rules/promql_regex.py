"""Go/Prometheus regular expressions on RE2 (the `google-re2` package): linear time, RE2 syntax.

Prometheus compiles label matchers as `^(?s:re)$` (3.x; `^(?:re)$` in 2.x, where `.` does not
match a newline) with Go's regexp, whose syntax is RE2's. Running them on Python's backtracking `re`
made a pattern such as `(a+)+` exponential on an untrusted label value (finding F6); RE2 matches in
time linear in the text, and accepts exactly RE2's syntax (`\\pL`, `[[:alpha:]]`, `(?i)` anywhere,
`\\z`, `\\Q...\\E`, `(?P<name>` and `(?<name>`), so nothing has to be translated. The one RE2 (C++)
escape Go lacks, `\\C` (any byte), is rejected.

Three entry points:

- `compile_regex(pattern, v2=...)`: a fully anchored program for label matchers and label_replace;
- `compile_matcher(pattern, v2=...)`: a `str -> bool` label-matcher check with fast paths for
  literal, alternation-of-literals, `.*`, `.+`, `prefix.*`, `.*suffix`, `.*infix.*` patterns and a
  bounded memo of recent answers (the RE2 call costs ~2 us through the binding);
- `compile_re2(pattern, dotall=False)`: an unanchored program (Go's `regexp.MustCompile`), for the
  template functions `match` and `reReplaceAll`.

All raise `RegexError` (a ValueError) for a pattern RE2 rejects. Texts are Python `str`; RE2 works
on their UTF-8 encoding, and every offset this module returns is a `str` index.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import re2
from re2 import _re2  # the binding itself: the `re2` module's wrapper adds ~10 us per call

__all__ = ["RE2Match", "RE2Regex", "RegexError", "compile_matcher", "compile_re2", "compile_regex", "go_expand"]

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = (-1, -1)
_META = frozenset("\\.+*?()|[]{}^$")
MEMO_MAX = 4_096  # remembered answers per matcher (cleared when full)


class RegexError(ValueError):
    """A pattern RE2 (Go regexp syntax) rejects; the message is RE2's, e.g. "missing ): (a"."""


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _reject_go_unsupported(pattern: str) -> None:
    """RE2 (C++) accepts `\\C` (any byte: it can split a character); Go's regexp does not."""
    i = pattern.find("\\")
    while i != -1:
        if pattern.startswith("\\C", i):
            raise RegexError("invalid escape sequence: \\C")
        i = pattern.find("\\", i + 2)


def _program(pattern: str, *, dotall: bool, capture: bool = True) -> _re2.RE2:
    _reject_go_unsupported(pattern)
    options = re2.Options()
    options.log_errors = False  # errors are raised, not written to stderr
    options.dot_nl = dotall
    options.never_capture = not capture
    prog = _re2.RE2(_encode(pattern), options)
    if not prog.ok():
        raise RegexError(prog.error().decode("utf-8", "replace"))
    return prog


class RE2Match:
    """One match: groups by number or name (None when a group did not take part), `str` offsets."""

    __slots__ = ("_data", "_spans", "_text", "re")

    def __init__(self, rx: RE2Regex, text: str, data: bytes, spans: list[tuple[int, int]]) -> None:
        self.re = rx
        self._text = text
        self._data = data
        self._spans = spans

    def _index(self, group: int | str) -> int:
        idx = self.re.groupindex.get(group, -1) if isinstance(group, str) else group
        if not 0 <= idx < len(self._spans):
            raise IndexError(f"no such group: {group!r}")
        return idx

    def group(self, group: int | str = 0) -> str | None:
        start, end = self._spans[self._index(group)]
        return None if start < 0 else _decode(self._data[start:end])

    def groups(self) -> tuple[str | None, ...]:
        return tuple(self.group(i) for i in range(1, len(self._spans)))

    def groupdict(self) -> dict[str, str | None]:
        return {name: self.group(idx) for name, idx in self.re.groupindex.items()}

    def span(self, group: int | str = 0) -> tuple[int, int]:
        start, end = self._spans[self._index(group)]
        if start < 0:
            return _NO_MATCH
        if len(self._data) == len(self._text):  # ASCII: byte offsets are str offsets
            return start, end
        char_start = len(_decode(self._data[:start]))
        return char_start, char_start + len(_decode(self._data[start:end]))

    def start(self, group: int | str = 0) -> int:
        return self.span(group)[0]

    def end(self, group: int | str = 0) -> int:
        return self.span(group)[1]

    def expand(self, template: str) -> str:
        """Go's Regexp.ExpandString: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown groups are ''."""
        return go_expand(template, self)

    def __repr__(self) -> str:
        return f"<RE2Match span={self.span()} match={self.group()!r}>"


class RE2Regex:
    """A compiled RE2 program (immutable, shareable between threads).

    `anchored` programs (from compile_regex) match the whole text in `fullmatch`; `search` finds the
    leftmost-first match anywhere (Go's semantics) starting at `pos`, with the text before `pos` as
    context for `^` and `\\b`, like Go's and Python's `search(text, pos)`.
    """

    __slots__ = ("_bool", "_prog", "_source", "dotall", "groupindex", "groups", "pattern")

    def __init__(self, pattern: str, *, dotall: bool, source: str | None = None) -> None:
        self.pattern = pattern
        self.dotall = dotall
        self._source = source if source is not None else pattern
        self._prog = _program(self._source, dotall=dotall)
        self._bool: _re2.RE2 | None = None  # the same program without captures, for yes/no answers
        self.groups: int = self._prog.NumberOfCapturingGroups()
        self.groupindex: dict[str, int] = {_decode(name): idx for name, idx in self._prog.NamedCapturingGroups()}

    def _match(self, anchor: _re2.RE2.Anchor, text: str, pos: int) -> RE2Match | None:
        data = _encode(text)
        if pos > 0:
            if pos > len(text):
                return None
            if len(data) != len(text):
                pos = len(_encode(text[:pos]))
        spans = self._prog.Match(anchor, data, pos, len(data))
        if spans[0][0] < 0:
            return None
        return RE2Match(self, text, data, spans)

    def search(self, text: str, pos: int = 0) -> RE2Match | None:
        """The leftmost match in `text[pos:]` (Go's FindStringSubmatchIndex from `pos`), or None."""
        return self._match(_UNANCHORED, text, max(pos, 0))

    def fullmatch(self, text: str) -> RE2Match | None:
        """A match of the whole text (what `^(?:re)$` matches in Go), or None."""
        return self._match(_ANCHOR_BOTH, text, 0)

    def matches(self, text: str) -> bool:
        """Whether the whole text matches; cheaper than `fullmatch` (no captures are extracted)."""
        prog = self._bool
        if prog is None:
            prog = self._bool = _program(self._source, dotall=self.dotall, capture=False)
        data = _encode(text)
        return prog.Match(_ANCHOR_BOTH, data, 0, len(data))[0][0] >= 0

    def finditer(self, text: str) -> Iterator[RE2Match]:
        """Successive non-overlapping matches as Go's FindAll: an empty match right after a match is
        skipped, and the search always advances by at least one character."""
        data = _encode(text)
        n = len(data)
        pos, last_end, prog = 0, -1, self._prog
        while pos <= n:
            spans = prog.Match(_UNANCHORED, data, pos, n)
            start, end = spans[0]
            if start < 0:
                break
            if not (start == end and start == last_end):
                yield RE2Match(self, text, data, spans)
            last_end = end
            width = _rune_width(data, pos)
            if pos + width > end:
                pos += width
            elif pos + 1 > end:
                pos += 1
            else:
                pos = end

    def sub(self, repl: str, text: str) -> str:
        """Go's Regexp.ReplaceAllString: every match replaced by `repl` expanded Go-style (`$1`, `${1}`,
        `$name`, `${name}`, `$$` for `$`; unknown groups expand to ''), an empty match right after a
        match is not replaced. NOT Python's `\\1` / `\\g<1>` syntax."""
        parts = _parse_template(repl)
        data = _encode(text)
        n = len(data)
        out: list[bytes] = []
        pos, last_end, prog = 0, 0, self._prog
        while pos <= n:
            spans = prog.Match(_UNANCHORED, data, pos, n)
            start, end = spans[0]
            if start < 0:
                break
            out.append(data[last_end:start])
            if end > last_end or start == 0:
                out.append(_expand_bytes(parts, self.groupindex, data, spans))
            last_end = end
            width = _rune_width(data, pos)
            if pos + width > end:
                pos += width
            elif pos + 1 > end:
                pos += 1
            else:
                pos = end
        out.append(data[last_end:])
        return _decode(b"".join(out))

    def __repr__(self) -> str:
        return f"RE2Regex({self.pattern!r})"


def _rune_width(data: bytes, pos: int) -> int:
    """Length of the UTF-8 sequence at `pos` (0 at the end), as Go's utf8.DecodeRune."""
    if pos >= len(data):
        return 0
    b = data[pos]
    width = 1 if b < 0xC0 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
    return min(width, len(data) - pos)


# -- Go's Regexp.Expand ---------------------------------------------------------------------------

_Part = str | int | tuple[str]  # literal text, group number, (group name,)


@functools.lru_cache(maxsize=256)
def _parse_template(template: str) -> tuple[_Part, ...]:
    """Go's expand template: `$$` is `$`; `$name`/`${name}` where a name is the longest run of letters,
    digits and `_` (`$1x` is the group named "1x"); an all-digit name without a leading zero below
    1e8 is a group number; a malformed `$` (no name, unclosed brace) is literal text."""
    parts: list[_Part] = []
    lit: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$":
            lit.append(c)
            i += 1
            continue
        if template.startswith("$$", i):
            lit.append("$")
            i += 2
            continue
        j = i + 1
        brace = j < n and template[j] == "{"
        if brace:
            j += 1
        k = j
        while k < n and (template[k].isalpha() or template[k].isdecimal() or template[k] == "_"):
            k += 1
        name = template[j:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            lit.append("$")
            i += 1
            continue
        if lit:
            parts.append("".join(lit))
            lit = []
        number = name.isascii() and name.isdigit() and len(name) <= 8 and not (name[0] == "0" and len(name) > 1)
        parts.append(int(name) if number else (name,))
        i = k + 1 if brace else k
    if lit:
        parts.append("".join(lit))
    return tuple(parts)


def _expand_bytes(parts: tuple[_Part, ...], groupindex: dict[str, int], data: bytes,
                  spans: list[tuple[int, int]]) -> bytes:
    out: list[bytes] = []
    for part in parts:
        if isinstance(part, str):
            out.append(_encode(part))
            continue
        idx = part if isinstance(part, int) else groupindex.get(part[0], -1)
        if 0 <= idx < len(spans) and spans[idx][0] >= 0:
            out.append(data[spans[idx][0]:spans[idx][1]])
    return b"".join(out)


def go_expand(template: str, m: RE2Match) -> str:
    """Go's Regexp.ExpandString of `template` for match `m` (label_replace's replacement)."""
    return _decode(_expand_bytes(_parse_template(template), m.re.groupindex, m._data, m._spans))


# -- entry points ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def compile_re2(pattern: str, *, dotall: bool = False) -> RE2Regex:
    """Compile a Go regexp (RE2 syntax), unanchored, as `regexp.MustCompile(pattern)`; cached.

    Returns an `RE2Regex`:
      - `.search(text: str, pos: int = 0) -> RE2Match | None` (leftmost-first match; `^`/`\\b` see the
        text before `pos`), `.fullmatch(text: str) -> RE2Match | None`, `.matches(text) -> bool` (full);
      - `.sub(repl: str, text: str) -> str`: Go's ReplaceAllString, with `repl` in GO syntax (`$1`, `${1}`,
        `$name`, `${name}`, `$$`), not Python's `\\1`;
      - `.finditer(text)`, `.groups: int`, `.groupindex: dict[str, int]`, `.pattern: str`.
    An `RE2Match` has `.group(i | name = 0) -> str | None`, `.groups()`, `.groupdict()`, `.span()`,
    `.start()`, `.end()` (str offsets) and `.expand(go_template) -> str`.
    `dotall=True` lets `.` match a newline (Go's `(?s)`). Raises RegexError (a ValueError) on a bad pattern.
    """
    return RE2Regex(pattern, dotall=dotall)


def compile_regex(pattern: str, *, v2: bool, alone: bool = True) -> RE2Regex:
    """A Prometheus regex for full-string matching: `^(?s:re)$` (3.x) or `^(?:re)$` (`v2`).

    `alone` (label matchers): the pattern must parse on its own, as Prometheus' FastRegexMatcher parses
    it before anchoring, so `a)|(b` is an error. label_replace compiles the anchored text directly
    (`alone=False`), where `a)|(b` is accepted as `^(?s:a)|(b)$`. Raises RegexError (a ValueError).
    """
    if alone:
        return _anchored(pattern, not v2)
    wrapped = f"(?s:{pattern})" if not v2 else f"(?:{pattern})"
    return RE2Regex(pattern, dotall=False, source=wrapped)


@functools.lru_cache(maxsize=512)
def _anchored(pattern: str, dotall: bool) -> RE2Regex:
    return RE2Regex(pattern, dotall=dotall)


def compile_matcher(pattern: str, *, v2: bool) -> Callable[[str], bool]:
    """A `=~` label matcher: whether a label value fully matches `pattern` (Prometheus 3.x: `.` matches
    a newline; 2.x, `v2`: it does not). Raises RegexError (a ValueError) for a bad pattern."""
    rx = compile_regex(pattern, v2=v2)  # validates, even when a fast path answers
    fast = _fast_path(pattern, dotall=not v2)
    if fast is not None:
        return fast
    memo: dict[str, bool] = {}
    slow = rx.matches

    def check(value: str) -> bool:
        hit = memo.get(value)
        if hit is None:
            hit = slow(value)
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[value] = hit
        return hit

    return check


def _literal(text: str) -> bool:
    return not _META.intersection(text)


def _fast_path(p: str, *, dotall: bool) -> Callable[[str], bool] | None:
    """Plain-string checks for the common shapes (what Prometheus' FastRegexMatcher also short-cuts)."""
    if _literal(p):
        return p.__eq__
    if "|" in p and all(_literal(alt) for alt in p.split("|")):
        return frozenset(p.split("|")).__contains__
    if p == ".*":
        return (lambda s: True) if dotall else (lambda s: "\n" not in s)
    if p == ".+":
        return (lambda s: s != "") if dotall else (lambda s: s != "" and "\n" not in s)
    head, tail = p.startswith(".*"), p.endswith(".*")
    lit = p[2 if head else 0:len(p) - 2 if tail else len(p)]
    if not (head or tail) or not lit or not _literal(lit) or (not dotall and "\n" in lit):
        return None
    if head and tail:
        return (lambda s: lit in s) if dotall else (lambda s: lit in s and "\n" not in s)
    if tail:
        return (lambda s: s.startswith(lit)) if dotall else (lambda s: s.startswith(lit) and "\n" not in s)
    return (lambda s: s.endswith(lit)) if dotall else (lambda s: s.endswith(lit) and "\n" not in s)

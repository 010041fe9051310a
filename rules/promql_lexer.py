"""A small PromQL tokenizer used only to find *where* something is in an expression.

`promql-parser` returns an AST without source positions and parse errors without offsets, so
positions for error messages ("unsupported function 'sort_by_label'", "parse error") are
recovered here from the text: tokens carry their 0-based start offset, strings and comments are
skipped properly (a function name inside a label value is not a function call).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?:(?:ms|[smhdwy])[0-9]*)*"
)
_OPERATORS = ("==", "!=", "=~", "!~", ">=", "<=", "(", ")", "{", "}", "[", "]", ",", "=", ">", "<", "+", "-",
              "*", "/", "%", "^", "@", ":")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident | number | string | op | other
    text: str  # raw text (strings: the decoded value)
    start: int
    end: int
    brace_depth: int  # > 0 inside {...}


def tokenize(text: str) -> list[Token]:
    """Best-effort tokens of `text`; never raises (unknown characters become `other` tokens)."""
    out: list[Token] = []
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c in "\"'`":
            j, value = _scan_string(text, i)
            out.append(Token("string", value, i, j, depth))
            i = j
            continue
        m = _NUMBER.match(text, i)
        if m and (c.isdigit() or c == "."):
            out.append(Token("number", m.group(), i, m.end(), depth))
            i = m.end()
            continue
        m = _IDENT.match(text, i)
        if m:
            out.append(Token("ident", m.group(), i, m.end(), depth))
            i = m.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                if op == "{":
                    depth += 1
                out.append(Token("op", op, i, i + len(op), depth))
                if op == "}":
                    depth = max(0, depth - 1)
                i += len(op)
                break
        else:
            out.append(Token("other", c, i, i + 1, depth))
            i += 1
    return out


def _scan_string(text: str, i: int) -> tuple[int, str]:
    quote = text[i]
    j = i + 1
    chars: list[str] = []
    while j < len(text):
        c = text[j]
        if c == quote:
            return j + 1, "".join(chars)
        if c == "\\" and quote != "`" and j + 1 < len(text):
            nxt = text[j + 1]
            chars.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}.get(nxt, "\\" + nxt))
            j += 2
            continue
        chars.append(c)
        j += 1
    return len(text), "".join(chars)


def _next(tokens: list[Token], k: int) -> Token | None:
    return tokens[k + 1] if k + 1 < len(tokens) else None


def find_call(tokens: list[Token], name: str, *, aggregation: bool = False) -> int | None:
    """Offset of `name` used as a function call (or aggregation: also `name by (...)`)."""
    for k, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != name or tok.brace_depth:
            continue
        nxt = _next(tokens, k)
        if nxt is None:
            continue
        if nxt.text == "(" or (aggregation and nxt.kind == "ident" and nxt.text.lower() in ("by", "without")):
            return tok.start
    return None


def find_op(tokens: list[Token], op: str) -> int | None:
    for tok in tokens:
        if tok.kind == "op" and tok.text == op:
            return tok.start
    return None


def find_keyword(tokens: list[Token], word: str, *, in_braces: bool | None = None) -> int | None:
    for tok in tokens:
        if (tok.kind == "ident" and tok.text.lower() == word.lower()
                and (in_braces is None or bool(tok.brace_depth) == in_braces)):
            return tok.start
    return None


def find_subquery(tokens: list[Token]) -> int | None:
    """Offset of the `[` that opens a subquery range (`[5m:1m]`, `[1h:]`)."""
    for k, tok in enumerate(tokens):
        if tok.kind == "op" and tok.text == "[":
            nxt = _next(tokens, k)
            after = _next(tokens, k + 1)
            if nxt is not None and after is not None and after.text == ":":
                return tok.start
    return None


def find_regex_string(tokens: list[Token], value: str) -> int | None:
    """Offset of the string literal `value` used after `=~`/`!~` (or anywhere, as a fallback)."""
    fallback = None
    for k, tok in enumerate(tokens):
        if tok.kind == "string" and tok.text == value:
            if k > 0 and tokens[k - 1].text in ("=~", "!~"):
                return tok.start
            if fallback is None:
                fallback = tok.start
    return fallback


def unmatched_open(tokens: list[Token], open_: str, close: str) -> int | None:
    stack: list[int] = []
    for tok in tokens:
        if tok.kind != "op":
            continue
        if tok.text == open_:
            stack.append(tok.start)
        elif tok.text == close and stack:
            stack.pop()
    return stack[-1] if stack else None


def unmatched_close(tokens: list[Token], open_: str, close: str) -> int | None:
    depth = 0
    for tok in tokens:
        if tok.kind != "op":
            continue
        if tok.text == open_:
            depth += 1
        elif tok.text == close:
            if depth == 0:
                return tok.start
            depth -= 1
    return None


# Appending one of these to an incomplete expression makes it parse: the error is at the end.
_COMPLETIONS = (" 1", ")", "))", "}", "]", '"}', " (a)", " (a) (x)", "(x)", " x", "[5m])")


def parse_error_position(text: str, message: str, parses: Callable[[str], bool]) -> int | None:
    """Where a parse error most likely is (0-based), from the message and by re-parsing prefixes.

    `parses(text)` tells whether a text parses; only called on error paths (load time).
    """
    tokens = tokenize(text)
    if not tokens:
        return 0
    m = re.search(r"(?:function with name|to function) '([^']+)'", message)
    if m:
        pos = find_call(tokens, m.group(1))
        if pos is not None:
            return pos
    m = re.search(r"illegal regex for (.*)$", message)
    if m:
        pos = find_regex_string(tokens, m.group(1))
        if pos is not None:
            return pos
    if "unclosed left parenthesis" in message:
        return unmatched_open(tokens, "(", ")")
    if "unexpected right parenthesis" in message:
        return unmatched_close(tokens, "(", ")")
    if "unclosed left bracket" in message:
        return unmatched_open(tokens, "[", "]")
    if "unclosed left brace" in message:
        return unmatched_open(tokens, "{", "}")
    if "unexpected end of input" in message:
        return len(text)
    if any(parses(text + tail) for tail in _COMPLETIONS):
        return len(text)
    for k in range(len(tokens) - 1, 0, -1):
        if parses(text[: tokens[k - 1].end]):
            return tokens[k].start
    return tokens[0].start

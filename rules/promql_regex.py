"""RE2 (Go/Prometheus) regular expressions on Python's `re`, for label matchers and label_replace.

Prometheus anchors matchers fully (`^(?s:re)$` in 3.x, `^(?:re)$` in 2.x); here `fullmatch` does
the anchoring. The few RE2 constructs `re` lacks are translated (POSIX classes, `\\z`, `(?<name>`,
mid-pattern flags) or rejected with ValueError so that the rule fails at load time, not silently.
"""

from __future__ import annotations

import re

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ", "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}


def compile_regex(pattern: str, *, v2: bool) -> re.Pattern[str]:
    """Compile an RE2-syntax regex for full-string matching with Python's `re` (raises ValueError)."""
    if "\\p" in pattern or "\\P" in pattern:
        raise ValueError("Unicode classes (\\p{...}) are not supported")
    if "\\C" in pattern or "\\Q" in pattern:
        raise ValueError("this RE2 construct is not supported")
    translated = re.sub(r"\[:(\^?)([a-z]+):\]", _posix_class, pattern)
    translated = translated.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    translated = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", translated)
    translated = _scope_inline_flags(translated)
    flags = 0 if v2 else re.DOTALL
    try:
        return re.compile(f"(?:{translated})", flags)
    except re.error as exc:
        raise ValueError(str(exc)) from None


_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?\)")


def _scope_inline_flags(pattern: str) -> str:
    """RE2's `a(?i)b` sets flags until the end of the enclosing group; Python wants `a(?i:b)`."""
    out: list[str] = []
    closers: list[int] = [0]  # per open group: how many scoped-flag groups to close at its end
    mid_group: list[bool] = [False]  # per open group: flags set after some content (alternation unsafe)
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]" or (out and out[-1] == "[")
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
        elif c == "(":
            m = _INLINE_FLAGS.match(pattern, i)
            if m:
                on, off = m.group(1), m.group(2) or ""
                if set(on + off) - set("ims"):
                    raise ValueError(f"unsupported regex flags {m.group()}")
                at_start = not out or out[-1].endswith("(") or out[-1].endswith(":")
                mid_group[-1] = mid_group[-1] or not at_start
                out.append(f"(?{on}{'-' + off if off else ''}:")
                closers[-1] += 1
                i = m.end()
                continue
            closers.append(0)
            mid_group.append(False)
        elif c == ")":
            out.append(")" * closers.pop() if len(closers) > 1 else "")
            if len(mid_group) > 1:
                mid_group.pop()
        elif c == "|" and mid_group[-1]:
            raise ValueError("inline flags in the middle of an alternative are not supported")
        out.append(c)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)


def _posix_class(m: re.Match[str]) -> str:
    cls = _POSIX_CLASSES.get(m.group(2))
    if cls is None:
        raise ValueError(f"unknown POSIX class [:{m.group(2)}:]")
    if m.group(1):
        raise ValueError("negated POSIX classes are not supported")
    return cls

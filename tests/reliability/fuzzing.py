"""Shared hypothesis strategies and settings for the reliability fuzz tests.

Budgets are bounded twice: `max_examples` per test and a per-example `deadline`, so each fuzz test
stays within ~20 s; `HOSTWARDEN_SLOW=1` multiplies the example counts by 10.
"""

from __future__ import annotations

import dataclasses
import os
import string
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

SCALE = 10 if os.environ.get("HOSTWARDEN_SLOW", "") == "1" else 1


def budget(examples: int, deadline_ms: int = 2000, *, derandomize: bool = False, shrink: bool = True) -> settings:
    """Settings for one fuzz test: `examples` (×10 when slow) and a per-example deadline. `derandomize`
    and `shrink=False` for the strict-xfail runs over code with a known finding: deterministic and quick
    to fail (the finding's own regression test holds the minimal input)."""
    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)
    return settings(max_examples=examples * SCALE, deadline=timedelta(milliseconds=deadline_ms), phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
                    derandomize=derandomize, database=None)


# -- scalars that trip parsers: durations, numbers in odd spellings, YAML specials, control characters --------
TRICKY_STRINGS = [
    "", " ", "0", "-1", "1e309", "nan", "NaN", "inf", "-inf", "0x10", "1_000", "10s", "5m", "1h30m", "-5s", "0s",
    "10", "10 s", "1y", "99999999999999999999d", "yes", "no", "on", "off", "null", "~", "true", "[]", "{}",
    "a: b", "- x", "&a", "*a", "!!python/object:os.system", "%", "{{", "}}", "{{ $value }}", "\x00", "\t", "\n",
    "é", "\u202e", "🔥", "a" * 300, "/", "../../etc/passwd", "127.0.0.1:99999", ":", "[::1]:80", "http://",
    "https://127.0.0.1:1/", "> 0.5", ">= -1e3", "< nan", "== x", "up == 1", "rate(x[5m])", "x{a=~\"(\"}",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(TRICKY_STRINGS),
    st.text(max_size=40),
)


def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any YAML-representable value: scalars, lists and string-keyed mappings, nested."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.one_of(st.sampled_from(TRICKY_STRINGS), st.text(max_size=12)),
                                                inner, max_size=4)),
        max_leaves=max_leaves,
    )


def config_mapping(cls: type, extra: dict[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[dict]:
    """A mapping using the dataclass's real field names (so the fuzzer reaches the validators) with
    random values, plus sometimes an unknown key."""
    names = [f.metadata.get("key", f.name) for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    keys = st.sampled_from(names) if names else st.text(max_size=12)
    base = st.dictionaries(st.one_of(keys, keys, st.text(max_size=10)), values(6), max_size=6)
    if not extra:
        return base
    return st.tuples(base, st.fixed_dictionaries({}, optional=extra)).map(lambda p: {**p[0], **p[1]})


def dump_yaml(doc: Any) -> str:
    """YAML text for `doc`; values PyYAML cannot represent fall back to their repr."""
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return repr(doc)


def mutate(text: str) -> st.SearchStrategy[str]:
    """`text` with a few random characters inserted, deleted or replaced (YAML indentation, quotes, colons)."""
    alphabet = string.printable + "\x00\u00e9\u202e\ufeff"

    def apply(ops: list[tuple[int, int, str]]) -> str:
        out = text
        for kind, pos, ch in ops:
            if not out:
                out = ch
                continue
            p = pos % len(out)
            if kind == 0:
                out = out[:p] + ch + out[p:]
            elif kind == 1:
                out = out[:p] + out[p + 1:]
            else:
                out = out[:p] + ch + out[p + 1:]
        return out

    op = st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.sampled_from([*list(alphabet), ": ", "\n  ", "- "]))
    return st.lists(op, min_size=1, max_size=6).map(apply)

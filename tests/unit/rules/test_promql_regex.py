"""RE2 regular expressions for PromQL matchers, label_replace and templates (finding F6)."""

from __future__ import annotations

import math

import pytest
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql import PromQLError, compile_expr
from hostwarden.rules.promql_regex import MEMO_MAX, RegexError, compile_matcher, compile_re2, compile_regex

EVIL = "a" * 40 + "!"  # minutes (exponential) for `(a+)+` on a backtracking engine; linear on RE2


def store_with(*label_sets: tuple[tuple[str, str], ...]) -> SeriesStore:
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    for labels in label_sets:
        store.load_series("x", labels, [(100.0, 1.0)])
    return store


def label_values(result: object, key: str) -> list[str]:
    assert isinstance(result, list)
    return sorted(e.label(key) for e in result)


# -- pathological patterns: the test finishing is the proof ------------------------------------------


def test_matcher_nested_quantifier_on_untrusted_value_answers() -> None:
    store = store_with((("a", EVIL),), (("a", "aaa"),))
    assert label_values(compile_expr('x{a=~"(a+)+"}').eval(store, 100.0), "a") == ["aaa"]
    assert label_values(compile_expr('x{a!~"(a+)+"}').eval(store, 100.0), "a") == [EVIL]
    assert label_values(compile_expr('x{a=~"(a|aa)+"}', prometheus_compat=2).eval(store, 100.0), "a") == ["aaa"]


def test_label_replace_nested_quantifier_on_untrusted_value_answers() -> None:
    store = store_with((("a", EVIL),))
    result = compile_expr('label_replace(x, "b", "$1", "a", "(a+)+b")').eval(store, 100.0)
    assert label_values(result, "b") == [""]  # no match: labels unchanged
    result = compile_expr('label_replace(x, "b", "$1", "a", "(a+)+!")').eval(store, 100.0)
    assert label_values(result, "b") == ["a" * 40]  # leftmost-first: the first iteration takes every `a`


def test_compile_re2_nested_quantifier_search_and_sub_answer() -> None:
    rx = compile_re2("(a+)+$")
    assert rx.search(EVIL) is None
    assert rx.sub("", EVIL) == EVIL
    assert compile_re2("(x+x+)+y").search("x" * 5000) is None


# -- RE2 syntax Python's re lacks, with Prometheus' (Go regexp's) answers ------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("\\pL+", "héllo", True),
        ("\\pL+", "h3llo", False),
        ("\\p{Greek}+", "αβγ", True),
        ("\\PL+", "123", True),
        ("[[:alpha:]]+", "hello", True),
        ("[[:alpha:]]+", "héllo", False),  # POSIX classes are ASCII
        ("[[:^digit:]]+", "abc", True),
        ("a(?i)b", "aB", True),
        ("a(?i)b", "AB", False),
        ("a(?i)b|c", "C", True),  # the flag holds to the end of the group, across `|`
        ("x|a(?i)b", "X", False),
        ("(?i:a)b", "Ab", True),
        ("a\\z", "a", True),
        ("(?P<n>a)(?<m>b)", "ab", True),
        ("(?U)a+", "aaa", True),
        ("h.llo", "héllo", True),  # `.` is one character, not one byte
        (".{5}", "héllo", True),
        ("é+", "éé", True),
        ("", "", True),
        ("", "x", False),
    ],
)
def test_matcher_re2_syntax_prometheus_answer(pattern: str, value: str, matches: bool) -> None:
    assert compile_matcher(pattern, v2=False)(value) is matches
    assert (compile_regex(pattern, v2=False).fullmatch(value) is not None) is matches


def test_selector_re2_syntax_accepted_by_compile_expr() -> None:
    store = store_with((("a", "héllo"),), (("a", "HELLO"),), (("a", "h3llo"),))
    assert label_values(compile_expr('x{a=~"\\\\pL+"}').eval(store, 100.0), "a") == ["HELLO", "héllo"]
    assert label_values(compile_expr('x{a=~"[[:alpha:]]+"}').eval(store, 100.0), "a") == ["HELLO"]
    assert label_values(compile_expr('x{a=~"h(?i)ELLO"}').eval(store, 100.0), "a") == []
    assert label_values(compile_expr('x{a=~"(?i)h\\\\pLllo\\\\z"}').eval(store, 100.0), "a") == ["HELLO", "héllo"]


def test_matcher_dot_matches_newline_only_in_prometheus_3() -> None:
    for pattern in ("x.y", "(x|z).y", ".*", ".+", "x.*", ".*y", ".*x.*"):
        assert compile_matcher(pattern, v2=False)("x\ny") is True, pattern
        assert compile_matcher(pattern, v2=True)("x\ny") is False, pattern
    assert compile_matcher("(?s)x.y", v2=True)("x\ny") is True
    assert compile_matcher("(?-s)x.y", v2=False)("x\ny") is False


@pytest.mark.parametrize("pattern", ["(", "a{1001}", "(?x)a b", "\\C", "\\Z", "a**", "\\8"])
def test_compile_regex_rejected_pattern_raises_regex_error(pattern: str) -> None:
    with pytest.raises(RegexError):
        compile_regex(pattern, v2=False)
    with pytest.raises(ValueError):  # RegexError is a ValueError, what the callers catch
        compile_re2(pattern)


def test_selector_pattern_rejected_by_re2_reported_with_position() -> None:
    with pytest.raises(PromQLError) as info:
        compile_expr('up{job=~"a{1001}"}')
    assert info.value.position == 8
    assert "invalid repetition size" in info.value.message


def test_compile_regex_matcher_must_parse_alone_label_replace_need_not() -> None:
    # Prometheus parses a matcher's regex on its own, but label_replace compiles "^(?s:" + re + ")$"
    with pytest.raises(RegexError):
        compile_regex("a)|(b", v2=False)
    rx = compile_regex("a)|(b", v2=False, alone=False)
    assert rx.fullmatch("a") is not None and rx.fullmatch("b") is not None and rx.fullmatch("ab") is None


# -- fast paths agree with RE2 --------------------------------------------------------------------------

FAST_PATTERNS = ["", "foo", "foo|bar", "foo|", "|", ".*", ".+", "foo.*", ".*foo", ".*foo.*", ".*.*", "a\\.*",
                 "f.o", ".*fo\no.*", "fo\no.*", "é.*", ".*é", "(?i)foo", "foo|.*"]
FAST_VALUES = ["", "foo", "foox", "xfoo", "xfooy", "fo\no", "foo\n", "\nfoo", "bar", "é", "éa", "aé", "a.",
               "a...", "FOO", "x\nfoo\ny", "fo\nox"]


@pytest.mark.parametrize("v2", [False, True])
def test_matcher_fast_paths_agree_with_re2(v2: bool) -> None:
    for pattern in FAST_PATTERNS:
        check = compile_matcher(pattern, v2=v2)
        full = compile_regex(pattern, v2=v2)
        for value in FAST_VALUES:
            assert check(value) is full.matches(value) is (full.fullmatch(value) is not None), (pattern, value)


def test_matcher_memo_bounded_answers_stay_right() -> None:
    check = compile_matcher("(a|b)c+", v2=False)
    for i in range(MEMO_MAX + 500):
        value = "ac" + "c" * (i % 7) if i % 2 else f"x{i}"
        assert check(value) is (i % 2 == 1)


# -- compile_re2: the unanchored API of the template functions -----------------------------------------


def test_compile_re2_sub_is_go_replace_all_string() -> None:
    assert compile_re2("x*").sub("-", "abxd") == "-a-b-d-"  # Go; Python's re.sub gives -a-b--d-
    assert compile_re2("x*").sub("-", "éxé") == "-é-é-"
    assert compile_re2("a(b)?").sub("[$1]", "ab a") == "[b] []"
    assert compile_re2("(?P<w>\\w+)@(\\w+)").sub("${w} at $2 $$1 $1x ${1}x $01 \\1", "me@host") == \
        "me at host $1  mex  \\1"


def test_compile_re2_search_from_pos_uses_text_before_as_context() -> None:
    assert compile_re2("^a").search("aa", 1) is None
    assert compile_re2("\\bb").search("ab", 1) is None
    m = compile_re2("b").search("abab", 2)
    assert m is not None and m.span() == (3, 4)


def test_compile_re2_match_groups_and_offsets_in_characters() -> None:
    m = compile_re2("(?P<n>é+)(b)?").search("aééc")
    assert m is not None
    assert (m.span(), m.start(), m.end(), m.group(), m.group("n")) == ((1, 3), 1, 3, "éé", "éé")
    assert m.groups() == ("éé", None) and m.groupdict() == {"n": "éé"}
    assert m.span(2) == (-1, -1)
    assert m.expand("${n}|$2|$9|$$") == "éé|||$"
    assert compile_re2("(?P<n>é+)(b)?").groupindex == {"n": 1} and compile_re2("(a)(b)").groups == 2
    with pytest.raises(IndexError):
        m.group(3)


def test_compile_re2_dotall_and_finditer() -> None:
    assert compile_re2("a.b").search("a\nb") is None
    assert compile_re2("a.b", dotall=True).search("a\nb") is not None
    assert [m.group() for m in compile_re2("x*").finditer("abxd")] == ["", "", "x", ""]  # Go's FindAllString
    assert [m.span() for m in compile_re2("é").finditer("aéé")] == [(1, 2), (2, 3)]


def test_compile_re2_cached_per_pattern() -> None:
    assert compile_re2("(a|b)+") is compile_re2("(a|b)+")
    assert compile_re2("(a|b)+") is not compile_re2("(a|b)+", dotall=True)


def test_matcher_label_value_with_lone_surrogate_does_not_raise() -> None:
    # a label value decoded with surrogateescape from invalid UTF-8
    assert compile_matcher("(x|y).*", v2=False)("x\udcff") is True
    assert compile_re2("y").sub("z", "x\udcffy") == "x\udcffz"

"""rules/promql_regex.py drives google-re2's binding module (`re2._re2`) directly: its Python wrapper costs ~10 us a
call. This pins down every piece of that private interface the module uses, so an upgrade that changes it fails
here, by name, instead of somewhere inside rule evaluation."""

from __future__ import annotations

from hostwarden.rules.promql_regex import RegexError, compile_matcher, compile_re2
from re2 import _re2


def test_binding_interface_used_by_promql_regex() -> None:
    options = _re2.RE2.Options()
    for attr in ("log_errors", "dot_nl", "never_capture"):
        assert hasattr(options, attr), attr
    options.log_errors = False
    prog = _re2.RE2(b"(?P<word>a+)(b)?", options)
    assert prog.ok()
    assert prog.NumberOfCapturingGroups() == 2
    assert dict(prog.NamedCapturingGroups()) == {b"word": 1}
    spans = prog.Match(_re2.RE2.Anchor.UNANCHORED, b"xxaab", 0, 5)
    assert spans[0] == (2, 5) and spans[1] == (2, 4) and spans[2] == (4, 5)
    assert prog.Match(_re2.RE2.Anchor.ANCHOR_BOTH, b"xxaab", 0, 5)[0][0] < 0
    bad = _re2.RE2(b"(", options)
    assert not bad.ok() and b"missing" in bad.error()


def test_adapter_behaviour_end_to_end() -> None:
    m = compile_matcher("a(b|x)+c", v2=False)  # PromQL matchers are fully anchored
    assert m("abxc") and not m("zabxc") and not m("abxcz")
    r = compile_re2(r"(\w+)@(\w+)")
    match = r.search("mail alice@example now")
    assert match is not None and match.group(1) == "alice" and match.span() == (5, 18)
    try:
        compile_re2("(")
    except RegexError as e:
        assert "missing" in str(e)
    else:
        raise AssertionError("an invalid pattern compiled")

"""exporters.tickets.render: titles, bodies and notes per markup flavour; untrusted text stays inert; size limits."""

from __future__ import annotations

import html
import re

import pytest
from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.incident import Incident, TimelineEntry
from hostwarden.exporters.tickets.render import (
    FLAVOURS,
    escape_inline,
    last_event,
    render_body,
    render_event,
    render_title,
)
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1_700_000_000.0
EVIL = "@ann <script>x</script> ```` `tick` [a](http://evil.example) {noformat} </pre> <code> {{macro}}"


def incident(*, labels: dict[str, str] | None = None, title: str = "DiskFull on web1", diagnosis: str = "",
             annotations: tuple[tuple[str, str], ...] = (("summary", "disk nearly full"),),
             timeline: tuple[TimelineEntry, ...] = (), **kw: object) -> Incident:
    lab = tuple(sorted(({"host": "web1", "mountpoint": "/srv"} | (labels or {})).items()))
    alert = Alert(rule="DiskFull", group="disk", labels=lab, identity=lab, state=AlertState.FIRING,
                  severity="critical", value=0.9712345, active_since=T0, fired_at=T0 + 60, annotations=annotations,
                  threshold="> 0.95", expr="fs_used > 0.95", source="rules/disk.yaml:3")
    return Incident(fingerprint=alert.fingerprint, alert=alert, title=title, priority="P2", category="disk",
                    host="web1", labels=lab, opened_at=T0 + 60, diagnosis=diagnosis, timeline=timeline,
                    **kw)  # type: ignore[arg-type]


def test_render_title_cleans_control_chars_and_newlines() -> None:
    assert render_title(incident(title="Disk\x00Full\n on\tweb1\r\n")) == "DiskFull on web1"


def test_render_title_empty_falls_back_to_rule_on_host() -> None:
    assert render_title(incident(title="  ")) == "DiskFull on web1"


def test_render_title_long_truncated_with_ellipsis_to_max_len() -> None:
    t = render_title(incident(title="x" * 300), max_len=255)
    assert len(t) == 255 and t.endswith("…")


def test_render_body_plain_has_sections_values_and_fingerprint() -> None:
    inc = incident(diagnosis="PID  CPU\n123  99%", timeline=(TimelineEntry(T0 + 60, "opened", "fired"),))
    body = render_body(inc, "plain")
    for part in ("== Alert ==", "severity    critical", "value       0.971235 (threshold > 0.95)",
                 "since       2023-11-14 22:14:20 UTC", "== Summary ==", "disk nearly full", "== Labels ==",
                 "mountpoint  /srv", "== Diagnosis ==", "PID  CPU\n123  99%", "== Timeline ==",
                 "2023-11-14 22:14:20 UTC  opened  fired", f"fingerprint  {inc.fingerprint}"):
        assert part in body, part


def test_render_body_resolved_incident_says_resolved() -> None:
    body = render_body(incident(resolved_at=T0 + 600, reopen_count=2), "plain")
    assert "state       resolved" in body and "resolved    2023-11-14 22:23:20 UTC" in body
    assert "reopened    2 time(s)" in body


def test_render_body_markdown_untrusted_only_in_code() -> None:
    body = render_body(incident(labels={"mountpoint": EVIL}, diagnosis=EVIL), "markdown")
    assert "- `mountpoint`: ````` " + EVIL.replace("  ", " ") + " `````" in body  # longest run 4 → fence of 5
    assert "`````text\n" + EVIL + "\n`````" in body


def test_render_body_html_escapes_everything() -> None:
    body = render_body(incident(labels={"mountpoint": EVIL}, diagnosis=EVIL), "html")
    assert "<script>" not in body and "<code> {" not in body
    assert f"<code>{html.escape(EVIL, quote=True)}</code>" in body
    assert f"<pre>{html.escape(EVIL, quote=True)}</pre>" in body


def test_render_body_textile_defuses_offtags_inside_pre() -> None:
    body = render_body(incident(labels={"mountpoint": EVIL}, diagnosis="a</PRE>b<kbd>c"), "textile")
    assert body.count("<pre>") == body.count("</pre>")  # only ours
    assert "a<\u200b/PRE>b<\u200bkbd>c" in body
    assert "<\u200b/pre> <\u200bcode>" in body


def test_render_body_jira_wiki_defuses_noformat() -> None:
    body = render_body(incident(labels={"mountpoint": EVIL}), "jira_wiki")
    blocks = re.findall(r"\{noformat\}", body)
    assert len(blocks) % 2 == 0 and "{ noformat}" in body


def test_render_body_unknown_flavour_raises() -> None:
    with pytest.raises(ValueError, match="unknown markup flavour"):
        render_body(incident(), "bbcode")  # type: ignore[arg-type]


def test_escape_inline_markdown_text_with_backticks_padded() -> None:
    assert escape_inline("`x`", "markdown") == "`` `x` ``"
    assert escape_inline("", "markdown") == "` `"


def test_render_body_max_len_drops_oldest_timeline_first() -> None:
    tl = tuple(TimelineEntry(T0 + i, "updated", f"entry-{i:02d}") for i in range(40))
    inc = incident(timeline=tl, diagnosis="keep me")
    full = render_body(inc, "plain")
    body = render_body(inc, "plain", max_len=len(full) - 200)
    assert len(body) <= len(full) - 200
    assert "entry-39" in body and "entry-00" not in body and "keep me" in body
    assert re.search(r"\(truncated by hostwarden: \d+ earlier entries left out\)", body)


def test_render_body_max_len_cuts_diagnosis_with_note_keeps_fingerprint() -> None:
    inc = incident(diagnosis="line\n" * 5000)
    body = render_body(inc, "markdown", max_len=3000)
    assert len(body) <= 3000
    assert re.search(r"\(truncated by hostwarden: \d+ characters left out\)", body)
    assert inc.fingerprint in body and body.count("```") % 2 == 0


def test_render_body_tiny_max_len_still_bounded() -> None:
    for flavour in FLAVOURS:
        assert len(render_body(incident(diagnosis="x" * 1000), flavour, max_len=40)) <= 40  # type: ignore[arg-type]


def test_render_event_includes_text_state_and_escapes() -> None:
    note = render_event(incident(), "escalated <b>now</b> @ann", "html")
    assert "<pre>escalated &lt;b&gt;now&lt;/b&gt; @ann</pre>" in note and "<code>critical</code>" in note
    assert "escalated <b>now</b> @ann" in render_event(incident(), "escalated <b>now</b> @ann", "plain")


def test_last_event_latest_of_kind_or_default() -> None:
    tl = (TimelineEntry(T0, "resolved", "Resolved after 5m"), TimelineEntry(T0 + 9, "resolved", "Resolved after 9m"))
    assert last_event(incident(timeline=tl), "resolved") == "Resolved after 9m"
    assert last_event(incident(), "reopened") == "Reopened: the alert fires again"


# ---------------------------------------------------------------- properties

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(_text)
def test_escape_inline_markdown_code_span_is_well_formed(value: str) -> None:
    span = escape_inline(value, "markdown")
    fence = re.match(r"`+", span).group(0)  # type: ignore[union-attr]
    inner = span[len(fence):-len(fence)]
    assert span.endswith(fence) and "\n" not in span
    assert all(len(run) != len(fence) for run in re.findall(r"`+", inner))  # nothing inside closes the span
    assert not inner.startswith("`") and not inner.endswith("`")


@settings(max_examples=100, deadline=None)
@given(value=_text, diagnosis=_text)
def test_render_body_html_untrusted_never_becomes_markup(value: str, diagnosis: str) -> None:
    body = render_body(incident(labels={"mountpoint": value}, diagnosis=diagnosis), "html")
    stripped = re.sub(r"</?(h3|table|tr|th|td|code|pre)>", "", body)
    assert "<" not in stripped and ">" not in stripped.replace("&gt;", "")


@settings(max_examples=100, deadline=None)
@given(diagnosis=_text, extra=st.integers(min_value=0, max_value=3000))
def test_render_body_never_exceeds_max_len(diagnosis: str, extra: int) -> None:
    inc = incident(diagnosis=diagnosis * 20, timeline=tuple(TimelineEntry(T0, "updated", diagnosis) for _ in range(5)))
    for flavour in FLAVOURS:
        assert len(render_body(inc, flavour, max_len=200 + extra)) <= 200 + extra  # type: ignore[arg-type]


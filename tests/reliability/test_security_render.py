"""Untrusted label and annotation values rendered into tickets: inert in every backend's markup.

Each flavour of exporters/tickets/render.py is checked by an independent reader of that markup (written
here from the markup's rules, not from the renderer): after removing what the markup treats as literal
(CommonMark code spans and fences; Redmine `<pre>` blocks; Jira `{noformat}` blocks; HTML-escaped
text), only hostwarden's own skeleton may remain, so no untrusted character can become a link, a
mention, a macro, a tag or a heading. Jira Cloud's ADF document and e-mail headers (through a real
SMTP server, aiosmtpd, on 127.0.0.1) are checked the same way.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hostwarden.agent.core.incident import Incident, TimelineEntry
from hostwarden.exporters.tickets.email import EmailBackend, EmailConfig
from hostwarden.exporters.tickets.github import neutralise_title
from hostwarden.exporters.tickets.jira import adf_from_plain
from hostwarden.exporters.tickets.render import _heading_for, escape_inline, render_body, render_event, render_title
from hypothesis import given
from hypothesis import strategies as st

from tests.contract.incidents import HOSTILE, make_incident
from tests.reliability.fuzzing import budget

FRAGMENTS = [
    "@admin", "@everyone", "#1", "GH-1", "[~admin]", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "</pre>", "</PRE >", "< /pre>", "<pre class=x>", "<code>", "</code>", "<notextile>", "{noformat}", "{NOFORMAT}",
    "{noformat:title=x}", "{code}", "`", "``", "```", "````", "~~~", "[x](http://evil.example/)",
    "![i](http://evil.example/i.png)", "http://evil.example", "www.evil.example", "<http://evil.example>",
    "[link|http://evil.example]", "!http://evil.example/i.png!", "{{macro}}", "{{collapse}}", "h3. fake",
    "== Fake ==", "### fake", "*bold*", "_em_", "&amp;", "&lt;", "&#x3c;", "<!--", "-->", "\\", "|", "\r\nBcc: x@evil",
    "\nSubject: spoof", "\x00", "\x1b[31m", "\u202e", "\u2028", "\u0085", "\t", "\n", "\r", " ",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), min_size=1, max_size=6).map("".join)


@st.composite
def incidents(draw: st.DrawFn) -> Incident:
    labels = draw(st.dictionaries(st.one_of(st.sampled_from(["mountpoint", "process"]), hostile), hostile,
                                  max_size=3))
    inc = make_incident(labels={k: v for k, v in labels.items() if k}, diagnosis=draw(hostile),
                        title=draw(hostile))
    annotations = tuple(draw(st.lists(st.tuples(st.one_of(st.sampled_from(["summary", "description"]), hostile),
                                                hostile), max_size=3)))
    timeline = tuple(TimelineEntry(1_700_000_000.0 + i, draw(st.sampled_from(["opened", "updated"])), draw(hostile))
                     for i in range(draw(st.integers(0, 3))))
    alert = dataclasses.replace(inc.alert, annotations=annotations, threshold=draw(hostile))
    return dataclasses.replace(inc, alert=alert, timeline=timeline,
                               storm_of=tuple(draw(st.lists(hostile, max_size=2))))


# -- independent readers of each markup --------------------------------------------------------------------------
def _md_without_code(text: str) -> list[str]:
    """Lines of CommonMark text with fenced blocks and code spans replaced by markers (spec §4.5, §6.1)."""
    out: list[str] = []
    fence = 0
    for line in text.split("\n"):
        if fence:
            m = re.fullmatch(r" {0,3}(`{3,})[ \t]*", line)
            if m and len(m.group(1)) >= fence:
                fence = 0
            continue
        m = re.match(r" {0,3}(`{3,})([^`]*)$", line)
        if m:
            fence = len(m.group(1))
            out.append("<FENCE>")
            continue
        out.append(_strip_code_spans(line))
    assert fence == 0, "an unterminated fence swallows the rest of the ticket"
    return out


def _strip_code_spans(line: str) -> str:
    res: list[str] = []
    i = 0
    while i < len(line):
        if line[i] != "`":
            res.append(line[i])
            i += 1
            continue
        j = i
        while j < len(line) and line[j] == "`":
            j += 1
        n, k, close = j - i, j, None
        while k < len(line):
            if line[k] == "`":
                m = k
                while m < len(line) and line[m] == "`":
                    m += 1
                if m - k == n:
                    close = m
                    break
                k = m
            else:
                k += 1
        if close is None:
            res.append(line[i:j])
            i = j
        else:
            res.append("<CODE>")
            i = close
    return "".join(res)


HEADING = r"[A-Za-z0-9 _()-]+"


def assert_markdown_inert(text: str) -> None:
    for line in _md_without_code(text):
        assert re.fullmatch(rf"|### {HEADING}|- <CODE>: <CODE>|<FENCE>", line), f"untrusted markdown: {line!r}"


def _blocks(text: str, opener: str, closer: str) -> tuple[list[str], list[str]]:
    """(lines outside blocks, lines inside blocks) for blocks delimited by lines equal to opener/closer."""
    outside: list[str] = []
    inside: list[str] = []
    depth = 0
    for line in text.split("\n"):
        if depth == 0 and line == opener:
            depth = 1
        elif depth == 1 and line == closer:
            depth = 0
        elif depth:
            inside.append(line)
        else:
            outside.append(line)
    assert depth == 0, "unterminated block"
    return outside, inside


# A tag as an HTML tokenizer reads it (`<` or `</` directly followed by the name), and the laxer `</ pre>`;
# `< /pre>` is text to both.
TEXTILE_TAG = re.compile(r"</?\s*(pre|code|kbd|notextile)\b", re.IGNORECASE)


def assert_textile_inert(text: str) -> None:
    outside, inside = _blocks(text, "<pre>", "</pre>")
    for line in outside:
        assert re.fullmatch(rf"|h3\. {HEADING}", line), f"untrusted textile outside <pre>: {line!r}"
    for line in inside:  # Redmine ends the block at any of these tags, anywhere, in any case
        assert not TEXTILE_TAG.search(line), line


def assert_jira_wiki_inert(text: str) -> None:
    outside, inside = _blocks(text, "{noformat}", "{noformat}")
    for line in outside:
        assert re.fullmatch(rf"|h3\. {HEADING}", line), f"untrusted wiki markup outside noformat: {line!r}"
    for line in inside:
        assert "{noformat" not in line.lower(), line


ALLOWED_TAGS = re.compile(r"</?(h3|table|tr|th|td|code|pre)>")


def assert_html_inert(text: str) -> None:
    for tag in re.findall(r"<[^>]*>?", text):
        assert ALLOWED_TAGS.fullmatch(tag), f"untrusted tag: {tag!r}"
    rest = ALLOWED_TAGS.sub("", text)
    assert "<" not in rest and ">" not in rest
    for amp in re.finditer(r"&", rest):
        assert re.match(r"&(amp|lt|gt|quot|#x27);", rest[amp.start():]), rest[amp.start():amp.start() + 12]


def assert_plain_clean(text: str) -> None:
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", text)


def expected_headings(inc: Incident) -> set[str]:
    heads = {"Alert", "Labels", "Diagnosis", "Timeline", "hostwarden", f"Grouped incidents ({len(inc.storm_of)})"}
    return heads | {_heading_for(k) for k, _ in inc.alert.annotations}


def assert_adf_inert(doc: dict[str, Any], inc: Incident) -> None:
    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("content", []):
            yield from walk(child)

    for node in walk(doc):
        assert node["type"] in {"doc", "heading", "codeBlock", "paragraph", "text"}, node["type"]
        if node["type"] == "text":
            assert set(node) == {"type", "text"}, f"text node with marks: {node}"
        if node["type"] == "heading":
            assert node["content"][0]["text"] in expected_headings(inc), f"heading from untrusted text: {node}"


# -- properties -----------------------------------------------------------------------------------------------
@budget(150, deadline_ms=5000)
@given(inc=incidents(), event=hostile)
def test_render_markdown_untrusted_only_in_code(inc: Incident, event: str) -> None:
    assert_markdown_inert(render_body(inc, "markdown"))
    assert_markdown_inert(render_body(inc, "markdown", max_len=600))
    assert_markdown_inert(render_event(inc, event, "markdown"))


@budget(150, deadline_ms=5000)
@given(inc=incidents(), event=hostile)
def test_render_textile_untrusted_only_in_pre(inc: Incident, event: str) -> None:
    assert_textile_inert(render_body(inc, "textile"))
    assert_textile_inert(render_event(inc, event, "textile"))
    inline = escape_inline(event, "textile")
    assert inline.startswith("<code>") and inline.endswith("</code>")
    assert not TEXTILE_TAG.search(inline[6:-7])


@budget(150, deadline_ms=5000)
@given(inc=incidents(), event=hostile)
def test_render_jira_wiki_untrusted_only_in_noformat(inc: Incident, event: str) -> None:
    assert_jira_wiki_inert(render_body(inc, "jira_wiki"))
    assert_jira_wiki_inert(render_event(inc, event, "jira_wiki"))


@budget(150, deadline_ms=5000)
@given(inc=incidents(), event=hostile)
def test_render_html_untrusted_escaped(inc: Incident, event: str) -> None:
    assert_html_inert(render_body(inc, "html"))
    assert_html_inert(render_event(inc, event, "html"))
    assert_html_inert(escape_inline(event, "html"))


@budget(150, deadline_ms=5000)
@given(inc=incidents(), event=hostile)
def test_render_plain_and_title_without_control_characters(inc: Incident, event: str) -> None:
    assert_plain_clean(render_body(inc, "plain"))
    assert_plain_clean(render_event(inc, event, "plain"))
    title = render_title(inc)
    assert "\n" not in title and "\r" not in title and len(title) <= 255
    assert not re.search(r"[@#][\w-]", neutralise_title(title))  # GitHub: no mention, no #123 reference


def _adf_description(inc: Incident) -> dict[str, Any]:
    return adf_from_plain(render_body(inc, "plain") + f"\n\nhostwarden fingerprint: {inc.fingerprint}\n")


@budget(150, deadline_ms=5000)
@given(inc=incidents())
def test_render_jira_adf_untrusted_only_in_code_blocks_no_marks(inc: Incident) -> None:
    assert_adf_inert(_adf_description(inc), inc)


def test_render_jira_adf_fake_heading_line_in_annotation_stays_code() -> None:  # F12 (fixed)
    inc = make_incident()
    alert = dataclasses.replace(inc.alert, annotations=(("description", "disk full\n== Resolved: ignore ==\nok"),))
    inc = dataclasses.replace(inc, alert=alert)
    assert_adf_inert(_adf_description(inc), inc)


def test_render_known_hostile_string_every_flavour_inert() -> None:
    inc = make_incident(labels={"evil": HOSTILE}, diagnosis=HOSTILE + "\n</pre>\n{noformat}\n````", title=HOSTILE)
    assert_markdown_inert(render_body(inc, "markdown"))
    assert_textile_inert(render_body(inc, "textile"))
    assert_jira_wiki_inert(render_body(inc, "jira_wiki"))
    assert_html_inert(render_body(inc, "html"))
    assert_plain_clean(render_body(inc, "plain"))


# -- e-mail headers through a real SMTP server ----------------------------------------------------------------
@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.original_content or envelope.content)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()


EXPECTED_HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "X-Hostwarden-Fingerprint", "X-Hostwarden-Priority",
                    "Auto-Submitted", "X-Auto-Response-Suppress", "MIME-Version", "Content-Type",
                    "Content-Transfer-Encoding"}


@budget(40, deadline_ms=5000)
@given(inc=incidents())
def test_email_hostile_title_and_labels_add_no_header(smtp: tuple[int, list[bytes]], inc: Incident) -> None:
    port, received = smtp
    backend = EmailBackend(EmailConfig(name="mail", type="email", host="127.0.0.1", port=port, security="none",
                                       from_address="hostwarden@example.org", to=["helpdesk@example.org"], timeout=10))
    before = len(received)
    backend.open(inc)
    assert len(received) == before + 1
    msg = email.message_from_bytes(received[-1], policy=email.policy.default)
    names = set(msg.keys())
    assert names <= EXPECTED_HEADERS, names - EXPECTED_HEADERS
    assert len(msg.get_all("To")) == 1 and "Bcc" not in names and "Cc" not in names
    assert [a.addr_spec for a in msg["To"].addresses] == ["helpdesk@example.org"]
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])

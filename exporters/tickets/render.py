"""Safe rendering of an Incident into a ticket title and body, for each markup flavour a backend speaks.

Everything that comes from a label, an annotation, a diagnosis or a timeline entry is *untrusted*: a
process name, a mount point or a journal line can be chosen by whoever runs code on the host. So no
untrusted text is ever interpreted as markup by the ticket system:

- ``plain``: control characters removed, and a space before every untrusted line that starts with
  ``=``, so only hostwarden's own section titles are ``== X ==`` lines (Jira Cloud's ADF is built from
  the plain text: those lines, and only those, become headings).
- ``markdown`` (CommonMark/GFM: GitHub, GitLab, Gitea, Redmine's CommonMark): single-line values in
  code spans, multi-line text in fenced code blocks; the fence is longer than any backtick run in the
  text. Code is never auto-linked and never mentions anyone.
- ``textile`` (Redmine's default formatter): values in ``<pre>`` blocks; Redmine escapes HTML there
  and parses neither textile, nor macros, nor its own links (``#12``, ``r3``, ``@user``, URLs) inside;
  a ``</pre>`` in the text is defused with a zero-width space after its ``<``.
- ``html`` (Zammad, ServiceNow, e-mail): everything HTML-escaped; values in ``<code>``/``<pre>``.
- ``jira_wiki`` (Jira Server ``/rest/api/2``): values in ``{noformat}`` blocks, whose content Jira does
  not parse (no ``[~user]`` mentions, no links).

Fixed headings and key names are ours and trusted; a heading named after an annotation keeps only
letters, digits, spaces and inner hyphens (no ``-strike-`` in textile or Jira wiki). `max_len` bounds
the body: the timeline (oldest first), then the diagnosis, then other long text shrink, with a note
saying how much was left out.

API (stable; other backends import it):
    render_title(incident, max_len=255) -> str
    render_body(incident, flavour, max_len=None) -> str
    render_event(incident, event_text, flavour) -> str
    last_event(incident, kind) -> str   # latest timeline text of a kind ("resolved", "reopened")
    escape_inline(text, flavour) -> str
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from hostwarden.agent.core.incident import Incident

Flavour = Literal["plain", "markdown", "textile", "html", "jira_wiki"]
FLAVOURS: tuple[str, ...] = ("plain", "markdown", "textile", "html", "jira_wiki")

MAX_VALUE_CHARS = 1024  # one label or field value
MAX_TEXT_CHARS = 8192  # one annotation
MAX_TIMELINE_ENTRIES = 50
TRUNCATED = "(truncated by hostwarden: {n} characters left out)"
TRUNCATED_ENTRIES = "(truncated by hostwarden: {n} earlier entries left out)"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_TEXTILE_OFFTAG = re.compile(r"<(?=/?\s*(?:pre|code|kbd|notextile)\b)", re.IGNORECASE)
_PLAIN_HEADING_LIKE = re.compile(r"^(?==)", re.MULTILINE)  # a line that could pass for a `== X ==` title
_LOOSE_HYPHEN = re.compile(r"(?<![A-Za-z0-9])-+|-+(?![A-Za-z0-9])")


# ---------------------------------------------------------------- text helpers

def clean(text: str) -> str:
    """Drop control characters (keep newline and tab), normalise line endings."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str) -> str:
    return " ".join(clean(text).split())


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + " " + TRUNCATED.format(n=len(text) - limit)


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _fmt_value(v: float) -> str:
    return f"{v:.6g}"


def _code_span(text: str) -> str:
    """A CommonMark code span that holds `text` literally, whatever backticks it contains."""
    text = one_line(text)
    if not text:
        return "` `"
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or runs else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_fence(text: str) -> str:
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}text\n{text}\n{fence}"


def _html_pre(text: str) -> str:
    return f"<pre>{html.escape(text, quote=True)}</pre>"


def _textile_inert(text: str) -> str:
    """Text for inside Redmine's <pre>/<code>: Redmine HTML-escapes it itself (so no entities here), but a
    literal `</pre>` (or `<code>`, `<kbd>`, `<notextile>`) would end the block: a zero-width space after
    the `<` keeps such a tag from being one."""
    return _TEXTILE_OFFTAG.sub("<\u200b", text)


def _plain_inert(text: str) -> str:
    """Untrusted plain text in which no line starts like one of our `== X ==` section titles."""
    return _PLAIN_HEADING_LIKE.sub(" ", text)


def _textile_pre(text: str) -> str:
    return "<pre>\n" + _textile_inert(text) + "\n</pre>"


def _noformat(text: str) -> str:
    return "{noformat}\n" + re.sub(r"\{noformat", "{ noformat", text, flags=re.IGNORECASE) + "\n{noformat}"


def escape_inline(text: str, flavour: Flavour) -> str:
    """One untrusted single-line value, inert in `flavour` (wrapped in code where the flavour has it)."""
    text = one_line(text)
    if flavour == "plain":
        return text
    if flavour == "markdown":
        return _code_span(text)
    if flavour == "html":
        return f"<code>{html.escape(text, quote=True)}</code>"
    if flavour == "textile":
        return "<code>" + _textile_inert(text) + "</code>"
    if flavour == "jira_wiki":
        return _noformat(text)
    raise ValueError(f"unknown markup flavour {flavour!r}")


# ---------------------------------------------------------------- document model

@dataclass(frozen=True, slots=True)
class _Section:
    heading: str  # trusted, ours
    pairs: tuple[tuple[str, str], ...] = ()  # key (trusted or label name) → untrusted value
    text: str = ""  # untrusted multi-line text, rendered preformatted


def _pairs_block(pairs: tuple[tuple[str, str], ...]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def _render_section(s: _Section, flavour: Flavour) -> str:
    parts: list[str] = []
    if flavour == "plain":
        parts.append(f"== {s.heading} ==")
        if s.pairs:
            parts.append(_plain_inert(_pairs_block(s.pairs)))
        if s.text:
            parts.append(_plain_inert(s.text))
    elif flavour == "markdown":
        parts.append(f"### {s.heading}")
        if s.pairs:
            parts.append("\n".join(f"- {_code_span(k)}: {_code_span(v)}" for k, v in s.pairs))
        if s.text:
            parts.append(_md_fence(s.text))
    elif flavour == "textile":
        parts.append(f"h3. {s.heading}")
        if s.pairs:
            parts.append(_textile_pre(_pairs_block(s.pairs)))
        if s.text:
            parts.append(_textile_pre(s.text))
    elif flavour == "html":
        out = [f"<h3>{html.escape(s.heading)}</h3>"]
        if s.pairs:
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v, quote=True)}</code></td></tr>"
                           for k, v in s.pairs)
            out.append(f"<table>{rows}</table>")
        if s.text:
            out.append(_html_pre(s.text))
        return "\n".join(out)
    elif flavour == "jira_wiki":
        parts.append(f"h3. {s.heading}")
        if s.pairs:
            parts.append(_noformat(_pairs_block(s.pairs)))
        if s.text:
            parts.append(_noformat(s.text))
    else:
        raise ValueError(f"unknown markup flavour {flavour!r}")
    return "\n\n".join(parts)


def _sections(inc: Incident, *, timeline_skip: int = 0) -> list[_Section]:
    a = inc.alert
    value = _fmt_value(a.value) + (f" (threshold {one_line(a.threshold)})" if a.threshold else "")
    state = "resolved" if inc.resolved_at is not None else a.state.value
    fields: list[tuple[str, str]] = [
        ("alert", a.rule), ("state", state), ("severity", a.severity), ("priority", inc.priority),
        ("host", inc.host), ("category", inc.category or a.category), ("value", value),
        ("since", _fmt_time(inc.opened_at)),
    ]
    if a.fired_at is not None:
        fields.append(("fired", _fmt_time(a.fired_at)))
    if inc.resolved_at is not None:
        fields.append(("resolved", _fmt_time(inc.resolved_at)))
    if inc.reopen_count:
        fields.append(("reopened", f"{inc.reopen_count} time(s)"))
    if a.flapping:
        fields.append(("flapping", "yes"))
    if a.expr:
        fields.append(("expression", a.expr))
    if a.source:
        fields.append(("rule", a.source))
    out = [_Section("Alert", pairs=tuple((k, _cut(one_line(v), MAX_VALUE_CHARS)) for k, v in fields if v))]
    for key, text in a.annotations:
        body = _cut(clean(text).strip(), MAX_TEXT_CHARS)
        if body:
            out.append(_Section(_heading_for(key), text=body))
    if inc.labels:
        out.append(_Section("Labels", pairs=tuple((_cut(one_line(k), 128), _cut(one_line(v), MAX_VALUE_CHARS))
                                                  for k, v in inc.labels)))
    if inc.diagnosis.strip():
        out.append(_Section("Diagnosis", text=clean(inc.diagnosis).rstrip()))
    if inc.storm_of:
        out.append(_Section(f"Grouped incidents ({len(inc.storm_of)})", text="\n".join(map(one_line, inc.storm_of))))
    entries = inc.timeline[-MAX_TIMELINE_ENTRIES:]
    skipped = len(inc.timeline) - len(entries) + timeline_skip
    entries = entries[timeline_skip:] if timeline_skip < len(entries) else ()
    if entries or skipped:
        lines = [TRUNCATED_ENTRIES.format(n=skipped)] if skipped else []
        lines += [f"{_fmt_time(e.at)}  {one_line(e.kind)}  {_cut(one_line(e.text), MAX_VALUE_CHARS)}" for e in entries]
        out.append(_Section("Timeline", text="\n".join(lines)))
    out.append(_Section("hostwarden", pairs=(("fingerprint", inc.fingerprint),)))
    return out


def _heading_for(annotation: str) -> str:
    key = _LOOSE_HYPHEN.sub(" ", re.sub(r"[^A-Za-z0-9_ -]", "", annotation)[:64].replace("_", " "))
    return (" ".join(key.split()) or "annotation").capitalize()


def _join(sections: list[_Section], flavour: Flavour) -> str:
    return "\n\n".join(_render_section(s, flavour) for s in sections) + "\n"


# ---------------------------------------------------------------- public API

def render_title(incident: Incident, max_len: int = 255) -> str:
    """The ticket's one-line title: the incident's title (or `rule on host`), cleaned and bounded."""
    title = one_line(incident.title) or one_line(f"{incident.alert.rule} on {incident.host}")
    if len(title) <= max_len:
        return title
    return title[: max(0, max_len - 1)].rstrip() + "…"


def render_body(incident: Incident, flavour: Flavour, max_len: int | None = None) -> str:
    """The full ticket description in `flavour`; at most `max_len` characters (with a truncation note)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown markup flavour {flavour!r}")
    sections = _sections(incident)
    body = _join(sections, flavour)
    if max_len is None or len(body) <= max_len:
        return body
    # 1. drop timeline entries, oldest first
    n = len(incident.timeline[-MAX_TIMELINE_ENTRIES:])
    if n:
        skip = _largest(0, n, lambda k: len(_join(_sections(incident, timeline_skip=n - k), flavour)) <= max_len)
        sections = _sections(incident, timeline_skip=n - (skip if skip is not None else 0))
        body = _join(sections, flavour)
        if len(body) <= max_len:
            return body
    # 2. shrink long text sections, the diagnosis first, then from the last to the first
    order = sorted(range(len(sections)), key=lambda i: (sections[i].heading != "Diagnosis", -i))
    for i in order:
        s = sections[i]
        if not s.text:
            continue

        def fits(keep: int, i: int = i, s: _Section = s) -> bool:
            trial = [*sections[:i], replace(s, text=_keep(s.text, keep)), *sections[i + 1:]]
            return len(_join(trial, flavour)) <= max_len

        keep = _largest(0, len(s.text), fits)
        sections[i] = replace(s, text=_keep(s.text, keep or 0))
        body = _join(sections, flavour)
        if len(body) <= max_len:
            return body
    # 3. drop whole sections from the end (the Alert summary stays)
    while len(sections) > 1 and len(_join(sections, flavour)) > max_len:
        sections.pop(-2 if len(sections) > 2 else -1)
    body = _join(sections, flavour)
    if len(body) <= max_len:
        return body
    short = _render_section(_Section("Alert", text=TRUNCATED.format(n=len(body))), flavour) + "\n"
    return short if len(short) <= max_len else TRUNCATED.format(n=len(body))[:max_len]


def render_event(incident: Incident, event_text: str, flavour: Flavour) -> str:
    """A note/comment for one incident event (escalated, resolved, reopened …); `event_text` is untrusted."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown markup flavour {flavour!r}")
    a = incident.alert
    text = _cut(clean(event_text).strip(), MAX_TEXT_CHARS)
    value = _fmt_value(a.value) + (f" (threshold {one_line(a.threshold)})" if a.threshold else "")
    state = "resolved" if incident.resolved_at is not None else a.state.value
    pairs = (("state", state), ("severity", a.severity), ("priority", incident.priority), ("value", value))
    section = _Section("hostwarden update", pairs=tuple((k, one_line(v)) for k, v in pairs if v), text=text)
    return _render_section(section, flavour) + "\n"


DEFAULT_EVENT_TEXT = {"resolved": "Resolved: the alert no longer fires", "reopened": "Reopened: the alert fires again"}


def last_event(incident: Incident, kind: str) -> str:
    """The text of the incident's latest timeline entry of `kind` (e.g. the resolve note with its duration)."""
    for e in reversed(incident.timeline):
        if e.kind == kind and e.text.strip():
            return e.text
    return DEFAULT_EVENT_TEXT.get(kind, kind)


# ---------------------------------------------------------------- truncation helpers

def _keep(text: str, keep: int) -> str:
    if keep >= len(text):
        return text
    return text[:keep].rstrip() + "\n" + TRUNCATED.format(n=len(text) - keep)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """Largest k in [lo, hi] with ok(k), assuming ok is monotone (true up to some k); None if none."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo

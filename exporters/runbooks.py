"""The shipped runbooks, served by the agent: /docs/runbooks.md and /runbooks/ (all of them, each section
anchored as GitHub anchors headings: #hosthighcpuusage) and /runbooks/<AlertName> (one).

The text is docs/runbooks.md, installed with the package (hostwarden.config/runbooks.md) so an
air-gapped host has it. Each `## AlertName` section is one runbook. The shipped rules' relative
`runbook_url: docs/runbooks.md#hosthighcpuusage`, resolved against `web.runbook_base_url` (default:
this agent's own URL), lands on its section here, and against a git forge's URL of the repository
on the same file there. The Markdown subset the file uses (headings, paragraphs, numbered and
bulleted lists, `code`) is rendered here; all text is escaped.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass
from html import escape

RESOURCE = ("hostwarden.config", "runbooks.md")

_CSS = ("body{margin:0 auto;max-width:760px;padding:0 12px;font:15px/1.5 system-ui,sans-serif}"
        "code{background:rgba(127,127,127,.15);padding:0 3px;border-radius:3px;overflow-wrap:anywhere}"
        "a:focus-visible{outline:3px solid #0969da;outline-offset:2px}"
        "@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}a{color:#58a6ff}}")


@dataclass(frozen=True)
class Runbook:
    name: str
    markdown: str


@functools.cache
def load() -> tuple[str, tuple[Runbook, ...]]:
    """(intro, runbooks) from the installed runbooks.md; empty when it is missing."""
    try:
        text = importlib.resources.files(RESOURCE[0]).joinpath(RESOURCE[1]).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return "", ()
    return parse(text)


def parse(text: str) -> tuple[str, tuple[Runbook, ...]]:
    chunks = re.split(r"^## +", text, flags=re.MULTILINE)
    intro, books = chunks[0], []
    for chunk in chunks[1:]:
        name, _, body = chunk.partition("\n")
        books.append(Runbook(name.strip(), body.strip()))
    return intro, tuple(books)


def find(name: str) -> Runbook | None:
    wanted = name.strip().lower()
    return next((b for b in load()[1] if b.name.lower() == wanted), None)


def _inline(text: str) -> str:
    out = []
    for i, part in enumerate(text.split("`")):
        out.append(f"<code>{escape(part)}</code>" if i % 2 else escape(part))
    return "".join(out)


def markdown_html(md: str) -> str:
    """Headings, paragraphs, `1.`/`-` lists (with continuation lines) and `code`; everything escaped."""
    html: list[str] = []
    para: list[str] = []
    items: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal kind
        if para:
            html.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            html.append(f"<{kind}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{kind}>")
            items.clear()
            kind = ""

    for line in md.splitlines():
        stripped = line.strip()
        m = re.match(r"^(\d+\.|[-*])\s+(.*)$", stripped)
        if not stripped:
            flush()
        elif stripped.startswith("#"):
            flush()
            level = min(6, len(stripped) - len(stripped.lstrip("#")))
            html.append(f"<h{level}>{_inline(stripped.lstrip('#').strip())}</h{level}>")
        elif m:
            if para:
                flush()
            new_kind = "ol" if m.group(1)[0].isdigit() else "ul"
            if items and new_kind != kind:
                flush()
            kind = new_kind
            items.append(m.group(2))
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped
        else:
            if items:
                flush()
            para.append(stripped)
    flush()
    return "".join(html)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title><style>{_CSS}</style>"
            f"</head><body><p><a href=\"/\">Status</a> · <a href=\"/runbooks/\">All runbooks</a></p>{body}"
            "</body></html>\n")


def index_page() -> str:
    intro, books = load()
    links = "".join(f'<li><a href="/runbooks/{escape(b.name)}">{escape(b.name)}</a></li>' for b in books)
    sections = "".join(f'<section id="{escape(b.name.lower())}"><h2>{escape(b.name)}</h2>{markdown_html(b.markdown)}'
                       "</section>" for b in books)
    if not books:
        return _page("Runbooks", "<h1>Runbooks</h1><p>No runbooks are installed.</p>")
    return _page("Runbooks", markdown_html(intro) + f"<ul>{links}</ul>{sections}")


def runbook_page(name: str) -> str | None:
    book = find(name)
    if book is None:
        return None
    return _page(f"{book.name} — runbook", f"<h1>{escape(book.name)}</h1>{markdown_html(book.markdown)}")

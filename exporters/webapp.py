"""The agent's pages and APIs next to /metrics (same listener, TLS and basic auth): the routing.

    /                          status page (exporters/status_page.py)
    /alerts, /rules            → the status page's sections (Prometheus' page names)
    /api/v1/...                Prometheus' read API (exporters/api.py)
    /api/hostwarden/v1/status  the status page's content as JSON (`hostwarden status` reads it)
    /docs/runbooks.md, /runbooks/, /runbooks/NAME   the shipped runbooks (exporters/runbooks.py)
    /tickets/BACKEND/ID        a ticket of an embedded `local` backend (so the status page can link it)

`WebApp.handle` returns None for any other path (the caller answers 404).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from html import escape
from typing import Any, Protocol

from hostwarden.exporters import runbooks, status_page
from hostwarden.exporters.api import API, AgentView, Response, params_of
from hostwarden.exporters.statusmodel import STATUS_JSON_PATH, Summary, summary_json

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
PAGE_HEADERS = {"Content-Security-Policy": status_page.CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" '
           b'fill="#1a7f37"/><path d="M4 8.5l2.5 2.5L12 5.5" stroke="#fff" stroke-width="2" fill="none"/></svg>')


class StatusView(AgentView, Protocol):
    def summary(self, *, charts: bool = True) -> Summary: ...
    def local_ticket(self, backend: str, ticket_id: int) -> dict[str, Any] | None: ...


def _html(code: int, text: str) -> Response:
    return Response(code, text.encode(), HTML, dict(PAGE_HEADERS))


def _not_found(what: str) -> Response:
    return _html(404, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title>"
                      f"</head><body><p>{escape(what)} not found. <a href=\"/\">Status</a></p></body></html>\n")


class WebApp:
    def __init__(self, view: StatusView, *, telemetry_path: str = "/metrics") -> None:
        self.view = view
        self.telemetry_path = telemetry_path
        self.api = API(view)

    def close(self) -> None:
        self.api.close()

    def handle(self, method: str, target: str, body: bytes = b"", content_type: str = "") -> Response | None:
        path, _, query = target.partition("?")
        path = urllib.parse.unquote(path)
        if path.startswith("/api/v1/"):
            return self.api.handle(method, path, params_of(query, body, content_type))
        if method not in ("GET", "HEAD"):
            return None
        if path == "/":
            return _html(200, status_page.render(self.view.summary(), telemetry_path=self.telemetry_path))
        if path == "/favicon.ico":
            return Response(200, FAVICON, "image/svg+xml", {"Cache-Control": "max-age=86400"})
        if path in ("/alerts", "/rules"):
            return Response(302, b"", HTML, {"Location": "/#" + path[1:]})
        if path == STATUS_JSON_PATH:
            return Response(200, json.dumps(summary_json(self.view.summary(charts=False))).encode())
        if path in ("/runbooks", "/runbooks/", "/docs/runbooks.md"):
            return _html(200, runbooks.index_page())
        if path.startswith("/runbooks/"):
            page = runbooks.runbook_page(path[len("/runbooks/"):])
            return _html(200, page) if page is not None else _not_found("Runbook")
        if path.startswith("/tickets/"):
            return self._ticket(path)
        return None

    def _ticket(self, path: str) -> Response:
        parts = path.split("/")
        if len(parts) != 4 or not parts[3].isdigit():
            return _not_found("Ticket")
        ticket = self.view.local_ticket(parts[2], int(parts[3]))
        if ticket is None:
            return _not_found("Ticket")
        return _html(200, ticket_page(parts[2], ticket))


def _t(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts))) if ts else "—"


def ticket_page(backend: str, t: dict[str, Any]) -> str:
    """A local ticket, read-only (people act on it with `hostwarden tickets ack|comment|resolve|close`)."""
    facts = "".join(f"<tr><th scope=row>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in (
        ("Status", t.get("status", "")), ("Priority", t.get("priority", "")), ("Severity", t.get("severity", "")),
        ("Rule", t.get("rule", "")), ("Host", t.get("host", "")), ("Opened", _t(t.get("opened_at"))),
        ("Acknowledged", _t(t.get("acknowledged_at"))), ("Resolved", _t(t.get("resolved_at"))),
        ("Reopened", t.get("reopen_count", 0))))
    labels = " ".join(f"<code>{escape(str(k))}={escape(str(v))}</code>" for k, v in (t.get("labels") or {}).items())
    events = "".join(f"<li>{escape(_t(e.get('at')))} — {escape(str(e.get('kind', '')))} "
                     f"({escape(str(e.get('author', '')))})<pre>{escape(str(e.get('text', '')))}</pre></li>"
                     for e in t.get("events", []))
    title = f"{backend} #{t.get('id')}: {t.get('title', '')}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title><style>"
            "body{margin:0 auto;max-width:900px;padding:0 12px;font:15px/1.45 system-ui,sans-serif}"
            "pre{white-space:pre-wrap;overflow-wrap:anywhere}th{text-align:left;padding-right:12px}"
            "@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}a{color:#58a6ff}}</style>"
            f"</head><body><p><a href=\"/\">Status</a></p><h1>{escape(title)}</h1><table>{facts}</table>"
            f"<p>{labels}</p><h2>Diagnosis</h2><pre>{escape(str(t.get('diagnosis', '')))}</pre>"
            f"<h2>Timeline</h2><ol>{events}</ol><p>Act on it with <code>hostwarden tickets ack|comment|resolve|close "
            f"{escape(str(t.get('id')))}</code>.</p></body></html>\n")

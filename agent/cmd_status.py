"""`hostwarden status`: the status page's summary in the terminal (Monit's `monit summary` habit).

Reads the running agent's API (`GET /api/hostwarden/v1/status`, default http://127.0.0.1:19842, or
`--url`): firing and pending alerts with their tickets, checks, the last 24 h of incidents, and the
agent's health (collectors, outbox per backend, last reload). With basic auth configured, give the
user with `--user` and the password in the HOSTWARDEN_PASSWORD environment variable (never on the
command line); with TLS, `--ca-file` names the CA that signed the agent's certificate.

Exit codes: 0 the agent answered, 1 it could not be reached or answered an error, 2 usage error.
Every text from the agent (labels, check output, ticket titles) has its control characters replaced,
so a label cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

from hostwarden.agent.cmdutil import EXIT_FAILURE, EXIT_OK
from hostwarden.agent.cmdutil import one_line as clean

DEFAULT_URL = "http://127.0.0.1:19842"
STATUS_PATH = "/api/hostwarden/v1/status"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summary of the running agent: alerts, checks, incidents, health")
    p.add_argument("--url", default=DEFAULT_URL, help=f"the agent's address (default {DEFAULT_URL})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the agent (default 10)")
    p.add_argument("--user", default=None, help="basic auth user (password: $HOSTWARDEN_PASSWORD)")
    p.add_argument("--ca-file", default=None, help="CA certificate(s) to verify the agent's TLS certificate")
    p.add_argument("--width", type=int, default=0, help="truncate lines to this width (default: the terminal's)")
    p.set_defaults(func=cmd_status)


def fetch(url: str, *, timeout: float, user: str | None = None, password: str | None = None,
          ca_file: str | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url.rstrip("/") + STATUS_PATH, headers={"Accept": "application/json"})
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
        return json.loads(resp.read())


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) else clean(v)


def _ticket(t: dict[str, Any] | None, base: str) -> str:
    if not t:
        return "-"
    text = f"{t['backend']} #{t['id']}"
    url = str(t.get("url") or "")
    if url.startswith("/"):
        url = base.rstrip("/") + url
    return clean(f"{text} {url}" if url else text)


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render(s: dict[str, Any], *, base_url: str) -> list[str]:
    now = float(s["now"])
    h = s["health"]
    alerts = s["alerts"]
    firing = sum(1 for a in alerts if a["state"] == "firing")
    reload_text = "ok" if h["lastReloadSuccessful"] else "FAILED (previous configuration runs)"
    lines = [clean(f"hostwarden {h['version']} on {s['hostname']}: up {ago(now - h['startedAt'])}, "
                   f"last reload {reload_text}, {s['rules']['rules']} rules in {s['rules']['groups']} groups"), ""]
    lines.append(f"Alerts: {firing} firing, {len(alerts) - firing} pending")
    head = ["STATE", "SEVERITY", "ALERT", "SINCE", "VALUE", "THRESHOLD"]
    if s.get("silences"):
        head.append("SILENCED")
    head.append("TICKET")
    rows = [head]
    for a in alerts:
        where = ",".join(f"{k}={v}" for k, v in a["labels"].items() if k not in ("alertname", "severity"))
        row = [a["state"], a["severity"], a["name"] + (f"{{{where}}}" if where else ""),
               ago(now - a["activeAt"]), _value(a["value"]), a["threshold"] or "-"]
        if s.get("silences"):
            row.append("?" if a.get("silenced") is None else a["silenced"] or "no")
        row.append(_ticket(a.get("ticket"), base_url))
        rows.append([clean(c) for c in row])
    lines += _table(rows) if alerts else ["  nothing is firing or pending"]
    checks = s["checks"]
    ok = sum(1 for c in checks if c["state"] == "OK")
    lines += ["", f"Checks: {ok} of {len(checks)} OK"]
    lines += _table([["STATE", "CHECK", "TYPE", "OUTPUT"]] + [[clean(c["state"]), clean(c["name"]), clean(c["type"]),
                                                             clean(c["message"])] for c in checks]) if checks else []
    incidents = s["incidents"]
    still_open = sum(1 for i in incidents if i["status"] == "open")
    lines += ["", f"Incidents, last 24h: {len(incidents)} ({still_open} open)"]
    lines += _table([["ID", "STATUS", "OPENED", "DURATION", "TITLE", "TICKET"]] + [
        [f"#{i['id']}", clean(i["status"]), time.strftime("%m-%d %H:%M", time.gmtime(i["openedAt"])),
         ago((i["resolvedAt"] or now) - i["openedAt"]), clean(i["title"]), _ticket(i.get("ticket"), base_url)]
        for i in reversed(incidents)]) if incidents else []
    failing = [c for c in h["collectors"] if not c["success"]]
    lines += ["", f"Collectors: {len(h['collectors']) - len(failing)} ok, {len(failing)} failing"]
    lines += [clean(f"  {c['name']}: {c['lastError']}") for c in failing]
    outbox = ", ".join(f"{o['backend']} {o['pending']} pending" + (f" (oldest {ago(o['oldestAge'])})"
                                                                    if o["pending"] else "")
                       + (f", {o['dead']} dead" if o["dead"] else "") for o in h["outbox"])
    lines.append(clean(f"Outbox: {outbox or 'no backends'}"))
    if h.get("stateDegraded"):
        lines.append("State database: DEGRADED (in memory, not durable)")
    for r in s["rules"]["unhealthy"]:
        lines.append(clean(f"Rule {r['group']}/{r['rule']} fails: {r['error']}"))
    return lines


def cmd_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    url = args.url if "://" in args.url else f"http://{args.url}"
    try:
        data = fetch(url, timeout=args.timeout, user=args.user, password=os.environ.get("HOSTWARDEN_PASSWORD"),
                     ca_file=args.ca_file)
    except urllib.error.HTTPError as e:
        print(f"hostwarden status: {url} answered {e.code} {e.reason}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError) as e:
        print(f"hostwarden status: cannot reach the agent at {url}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return EXIT_FAILURE
    if args.format == "json":
        json.dump(data, out, indent=2)
        out.write("\n")
        return EXIT_OK
    width = args.width or (os.get_terminal_size(out.fileno()).columns if out.isatty() else 0)
    for line in render(data, base_url=url):
        out.write((line[: width - 1] + "…" if width and len(line) > width else line) + "\n")
    return EXIT_OK

"""`hostwarden tickets …` and `hostwarden report`: the local ticket store, the outbox, previews, reports.

Every subcommand takes `--config FILE` (default: the config `run` uses) to find the state directory
(`global.state_dir`) and the `tickets:` section. Exit codes: 0 ok, 1 runtime failure (no such ticket,
an action the ticket's status does not allow), 2 config or usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from hostwarden.agent.cmdutil import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    iso_time,
    load_agent_config,
    local_time,
    run_command,
    safe,
    table,
    usage,
    who,
)
from hostwarden.agent.core.units import human_duration, parse_duration

LIST_FIELDS = ("id", "status", "priority", "fingerprint", "title", "opened_at", "resolved_at", "reopen_count")


def add_commands(sub: argparse._SubParsersAction) -> None:
    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=None, help="agent config file (default: as for `hostwarden run`)")
        return p

    tickets = sub.add_parser("tickets", help="local tickets, the outbox and ticket previews")
    tsub = tickets.add_subparsers(dest="tickets_command", metavar="COMMAND")
    tickets.set_defaults(func=lambda args: usage(tickets))

    p = with_config(tsub.add_parser("list", help="list local tickets"))
    p.add_argument("--status", action="append", default=[], metavar="STATUS",
                   help="new, acknowledged, resolved, closed, reopened, or open (= new+acknowledged+reopened); "
                        "repeatable or comma-separated")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--backend", default=None, help="which local backend (default: the first one configured)")
    p.set_defaults(func=run_command(cmd_list))

    p = with_config(tsub.add_parser("show", help="one local ticket with its timeline"))
    p.add_argument("id", type=int)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--backend", default=None)
    p.set_defaults(func=run_command(cmd_show))

    for action, text in (("ack", "acknowledge a ticket"), ("resolve", "resolve a ticket (a person's decision)"),
                         ("close", "close a ticket")):
        p = with_config(tsub.add_parser(action, help=text))
        p.add_argument("id", type=int)
        p.add_argument("--by", default=None, help="who acts (default: the invoking user)")
        p.add_argument("--backend", default=None)
        p.set_defaults(func=run_command(cmd_act), action=action)

    p = with_config(tsub.add_parser("comment", help="add a comment to a ticket"))
    p.add_argument("id", type=int)
    p.add_argument("text", nargs="+")
    p.add_argument("--by", default=None)
    p.add_argument("--backend", default=None)
    p.set_defaults(func=run_command(cmd_act), action="comment")

    p = with_config(tsub.add_parser("outbox", help="ticket operations waiting for delivery, or dead-lettered"))
    p.add_argument("--all", action="store_true", help="also delivered operations (kept 7 days)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_command(cmd_outbox))

    p = with_config(tsub.add_parser("retry", help="queue a dead-lettered operation again"))
    p.add_argument("id", type=int, help="the outbox id (`hostwarden tickets outbox`)")
    p.set_defaults(func=run_command(cmd_retry))

    p = with_config(tsub.add_parser("preview", help="render the ticket a rule would open, without sending it"))
    p.add_argument("rule", help="the alert rule's name")
    p.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                   help="a label of the example alert (repeatable)")
    p.add_argument("--value", type=float, default=None, help="the example alert's value (default: its threshold)")
    p.add_argument("--severity", choices=("warning", "critical"), default=None)
    p.add_argument("--no-diagnosis", action="store_true", help="skip the (host-inspecting) diagnosis")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_command(cmd_preview))

    p = with_config(sub.add_parser("report", help="incident counts, MTTA, MTTR, SLA breaches, availability"))
    p.add_argument("--since", default="30d", help="period to report on, a duration (default 30d)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="html: one self-contained file with inline SVG charts")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of standard output")
    p.set_defaults(func=run_command(cmd_report))


# -- config, stores -----------------------------------------------------------------------------------------

def tickets_config(config: Any) -> Any:
    if config.tickets is not None:
        return config.tickets
    from hostwarden.agent.core.schema import Errors
    from hostwarden.agent.core.yamlsrc import Loc
    from hostwarden.exporters.tickets.config import parse_tickets

    errors = Errors()
    cfg = parse_tickets(None, errors, Loc(config.path, 1, 1), os.path.dirname(config.path))
    errors.raise_if_any()
    return cfg


def _local_path(config: Any, backend: str | None) -> str:
    from hostwarden.exporters.tickets.local import default_path

    tc = tickets_config(config)
    locals_ = [b for b in tc.backends if b.type == "local"]
    if backend is not None:
        locals_ = [b for b in locals_ if b.name == backend]
        if not locals_:
            raise CommandError(f"no local backend named {backend!r} is configured", EXIT_USAGE)
    if not locals_:
        names = ", ".join(f"{b.name} ({b.type})" for b in tc.backends) or "none"
        raise CommandError(f"no local ticket backend is configured (backends: {names}); its tickets live in "
                           f"that system. `hostwarden tickets outbox` shows what is being delivered.", EXIT_USAGE)
    b = locals_[0]
    return b.path or default_path(config.state_dir, b.name)


def _store(config: Any, backend: str | None, *, must_exist: bool) -> Any:
    from hostwarden.exporters.tickets.local import TicketStore

    path = _local_path(config, backend)
    if not os.path.exists(path):
        if must_exist:
            raise CommandError(f"no tickets yet ({path} does not exist)")
        return None
    try:
        return TicketStore(path)
    except Exception as e:
        raise CommandError(f"cannot open the ticket store {path}: {e}") from None


def _state(config: Any) -> Any:
    from hostwarden.agent.incidents.state import StateDB

    path = os.path.join(config.state_dir, "state.db")
    if not os.path.exists(path):
        return None
    return StateDB(path)


# -- tickets list / show / actions -------------------------------------------------------------------------------

def _statuses(values: list[str]) -> list[str]:
    from hostwarden.exporters.tickets.local import OPEN_STATUSES, STATUSES

    out: list[str] = []
    for v in values:
        for s in filter(None, (x.strip() for x in v.split(","))):
            if s == "open":
                out.extend(OPEN_STATUSES)
            elif s in STATUSES:
                out.append(s)
            else:
                raise CommandError(f"unknown status {s!r}; one of {', '.join(STATUSES)}, open", EXIT_USAGE)
    return out


def ticket_json(t: dict[str, Any]) -> dict[str, Any]:
    out = {k: t.get(k) for k in LIST_FIELDS}
    out.update({k: t.get(k) for k in ("category", "severity", "rule", "host", "labels", "acknowledged_at",
                                      "acknowledged_by", "closed_at", "ack_due", "resolve_due", "updated_at")})
    if t.get("events") is not None:
        out["events"] = t["events"]
        out["diagnosis"] = t.get("diagnosis", "")
        out["storm_of"] = t.get("storm_of", [])
    return out


def cmd_list(args: argparse.Namespace) -> int:
    config = load_agent_config(args)
    wanted = _statuses(args.status)
    store = _store(config, args.backend, must_exist=False)
    tickets = store.list(wanted) if store is not None else []
    if args.format == "json":
        print(json.dumps([ticket_json(t) for t in tickets], indent=2))
        return EXIT_OK
    if not tickets:
        print("no tickets")
        return EXIT_OK
    rows = [[str(t["id"]), t["status"], t["priority"], local_time(t["opened_at"]), local_time(t["resolved_at"]),
             str(t["reopen_count"]), safe(" ".join(t["title"].split()))[:80]] for t in tickets]
    print(table(rows, ["ID", "STATUS", "PRIO", "OPENED", "RESOLVED", "REOPENED", "TITLE"]))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from hostwarden.exporters.tickets.local import TicketNotFound

    config = load_agent_config(args)
    store = _store(config, args.backend, must_exist=True)
    try:
        t = store.get(args.id)
    except TicketNotFound as e:
        raise CommandError(str(e)) from None
    if args.format == "json":
        print(json.dumps(ticket_json(t), indent=2))
        return EXIT_OK
    print(safe(render_ticket(t, now=time.time())))
    return EXIT_OK


def render_ticket(t: dict[str, Any], *, now: float) -> str:
    lines = [f"#{t['id']}  {t['title']}",
             f"status:      {t['status']}" + _status_by(t),
             f"priority:    {t['priority']}   category: {t['category'] or '-'}   severity: {t['severity'] or '-'}",
             f"rule:        {t['rule']} on {t['host']}",
             f"fingerprint: {t['fingerprint']}",
             f"opened:      {local_time(t['opened_at'])}"]
    if t.get("acknowledged_at") is not None:
        by = f" by {t['acknowledged_by']}" if t.get("acknowledged_by") else ""
        lines.append(f"acknowledged: {local_time(t['acknowledged_at'])}{by}")
    if t.get("resolved_at") is not None:
        lines.append(f"resolved:    {local_time(t['resolved_at'])}")
    if t.get("reopen_count"):
        lines.append(f"reopened:    {t['reopen_count']} time(s)")
    for key, title in (("ack_due", "ack by"), ("resolve_due", "resolve by")):
        due = t.get(key)
        if due is not None:
            late = " (overdue)" if now > due and t["status"] in ("new", "reopened", "acknowledged") else ""
            lines.append(f"{title + ':':<12} {local_time(due)}{late}")
    if t.get("labels"):
        lines.append("labels:      " + " ".join(f"{k}={v}" for k, v in sorted(t["labels"].items())))
    if t.get("storm_of"):
        lines.append("")
        lines.append(f"grouped incidents ({len(t['storm_of'])}):")
        lines += [f"  {s}" for s in t["storm_of"]]
    lines.append("")
    lines.append("timeline:")
    for e in t.get("events", []):
        text = str(e["text"]).replace("\n", "\n" + " " * 24)
        author = f" [{e['author']}]" if e.get("author") and e["author"] != "hostwarden" else ""
        lines.append(f"  {local_time(e['at'])}  {e['kind']}{author}: {text}")
    if t.get("diagnosis"):
        lines.append("")
        lines.append("diagnosis:")
        lines.append(t["diagnosis"].rstrip())
    return "\n".join(lines)


def _status_by(t: dict[str, Any]) -> str:
    """Who brought the ticket to its status: the author of the last event of that status (a person's name,
    or `hostwarden` when the agent did it) — never the acknowledger of an earlier status."""
    kinds = {"acknowledged": ("acknowledged",), "resolved": ("resolved",), "closed": ("closed", "retired"),
             "reopened": ("reopened",), "new": ("opened",)}.get(t["status"], ())
    for e in reversed(t.get("events") or []):
        if e.get("kind") in kinds:
            return f" (by {e.get('author') or 'hostwarden'})"
    return ""


def cmd_act(args: argparse.Namespace) -> int:
    from hostwarden.exporters.tickets.local import InvalidTransition, TicketNotFound

    config = load_agent_config(args)
    store = _store(config, args.backend, must_exist=True)
    text = " ".join(getattr(args, "text", []) or [])
    try:
        t = store.act(args.id, args.action, by=who(args), now=time.time(), text=text)
    except (TicketNotFound, InvalidTransition) as e:
        raise CommandError(str(e)) from None
    verb = {"ack": "acknowledged", "comment": "commented", "resolve": "resolved", "close": "closed"}[args.action]
    print(f"ticket #{t['id']} {verb} (status: {t['status']})")
    return EXIT_OK


# -- outbox ----------------------------------------------------------------------------------------------------

def cmd_outbox(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.outbox import list_outbox

    config = load_agent_config(args)
    state = _state(config)
    rows = list_outbox(state, include_done=args.all) if state is not None else []
    if args.format == "json":
        print(json.dumps([{**r, "created_at": iso_time(r["created_at"]),
                           "last_attempt_at": iso_time(r["last_attempt_at"]),
                           "next_attempt_at": iso_time(r["next_attempt_at"]), "done_at": iso_time(r["done_at"])}
                          for r in rows], indent=2))
        return EXIT_OK
    if not rows:
        print("the outbox is empty: every ticket operation was delivered")
        return EXIT_OK
    now = time.time()
    lines = []
    for r in rows:
        nxt = r["next_attempt_at"]
        when = (f"in {human_duration(max(0.0, nxt - now))}" if r["status"] == "pending" and nxt else
                ("now" if r["status"] == "pending" else "-"))
        lines.append([str(r["id"]), r["status"], r["backend"], r["op"], r["fingerprint"], str(r["attempts"]),
                      f"{human_duration(max(0.0, now - r['created_at']))} ago", when,
                      safe(" ".join((r["last_error"] or "").split()))[:70]])
    print(table(lines, ["ID", "STATUS", "BACKEND", "OP", "FINGERPRINT", "TRIES", "QUEUED", "NEXT", "LAST ERROR"]))
    dead = sum(1 for r in rows if r["status"] == "dead")
    if dead:
        print(f"\n{dead} dead-lettered: fix the cause, then `hostwarden tickets retry ID`")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.outbox import retry

    config = load_agent_config(args)
    state = _state(config)
    if state is None or not retry(state, args.id):
        raise CommandError(f"no dead-lettered outbox operation {args.id} (see `hostwarden tickets outbox`)")
    print(f"outbox operation {args.id} queued again; the running agent delivers it within seconds")
    return EXIT_OK


# -- report ----------------------------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.maintenance import windows_of
    from hostwarden.agent.incidents.report import build_report, render_text

    config = load_agent_config(args)
    try:
        period = parse_duration(args.since)
    except ValueError as e:
        raise CommandError(f"--since: {e}", EXIT_USAGE) from None
    now = time.time()
    from hostwarden.agent.incidents.state import StateDB

    state = _state(config) or StateDB(":memory:")
    policy = tickets_config(config).policy()
    rep = build_report(state, since=now - period, now=now, policy=policy,
                       checks=[c.name for c in config.checks if getattr(c, "enabled", True)],
                       windows=windows_of(config))
    if args.format == "json":
        text = json.dumps(rep, indent=2) + "\n"
    elif args.format == "html":
        from hostwarden.agent.incidents.report_html import render_html

        text = render_html(rep, host=config.hostname)
    else:
        text = render_text(rep)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as e:
            raise CommandError(f"cannot write {args.output}: {e.strerror or e}") from None
    else:
        print(text, end="")
    return EXIT_OK


# -- preview ---------------------------------------------------------------------------------------------------

def cmd_preview(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.preview import PreviewError, preview_rule

    config = load_agent_config(args)
    labels: dict[str, str] = {}
    for item in args.label:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CommandError(f"--label {item!r}: expected NAME=VALUE", EXIT_USAGE)
        labels[k] = v
    try:
        result = preview_rule(config, tickets_config(config), args.rule, labels=labels, value=args.value,
                              severity=args.severity, diagnose=not args.no_diagnosis, now=time.time())
    except PreviewError as e:
        raise CommandError(str(e), e.code) from None
    if args.format == "json":
        print(json.dumps(result, indent=2, default=str))
    else:
        print(safe(result["text"]), end="")
    return EXIT_OK

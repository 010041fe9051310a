"""`hostwarden silence add|list|expire` and `hostwarden incidents list|show`.

Both work on the state database (`<global.state_dir>/state.db`) the running agent uses; a silence written
here is read by the agent at its next decision (no restart, no signal). Exit codes: 0 ok, 1 runtime failure
(no such silence or incident), 2 config or usage error.
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=None, help="agent config file (default: as for `hostwarden run`)")
        return p

    silence = sub.add_parser("silence", help="silence alerts: no ticket operations while it lasts")
    ssub = silence.add_subparsers(dest="silence_command", metavar="COMMAND")
    silence.set_defaults(func=lambda args: usage(silence))

    p = with_config(ssub.add_parser("add", help="add a silence; prints its id"))
    p.add_argument("--match", action="append", default=[], metavar="MATCHER", required=True,
                   help='Alertmanager matcher: NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX (repeatable; '
                        'all must hold), e.g. --match alertname=HostHighCpuUsage --match mountpoint=~"/data.*"')
    p.add_argument("--duration", default="1h", help="how long, from --start (default 1h)")
    p.add_argument("--start", default=None, help="when it starts, RFC 3339 (default: now)")
    p.add_argument("--end", default=None, help="when it ends, RFC 3339 (instead of --duration)")
    p.add_argument("--comment", default="", help="why (shown in notes, `silence list` and the report)")
    p.add_argument("--by", default=None, help="who (default: the invoking user)")
    p.add_argument("--format", choices=("id", "json"), default="id")
    p.set_defaults(func=run_command(cmd_silence_add))

    p = with_config(ssub.add_parser("list", help="silences in effect or pending (--expired: all)"))
    p.add_argument("--expired", action="store_true", help="also silences that are over")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_command(cmd_silence_list))

    p = with_config(ssub.add_parser("expire", help="end silences now"))
    p.add_argument("id", nargs="+", help="silence id (or an unambiguous prefix)")
    p.set_defaults(func=run_command(cmd_silence_expire))

    incidents = sub.add_parser("incidents", help="every incident, whatever backend it went to")
    isub = incidents.add_subparsers(dest="incidents_command", metavar="COMMAND")
    incidents.set_defaults(func=lambda args: usage(incidents))

    p = with_config(isub.add_parser("list", help="incidents with their tickets and delivery state"))
    p.add_argument("--status", action="append", default=[], metavar="STATUS", help="open or resolved (repeatable)")
    p.add_argument("--backend", default=None, help="only incidents sent to this backend")
    p.add_argument("--since", default=None, help="only incidents open or active within this duration, e.g. 7d")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_command(cmd_incidents_list))

    p = with_config(isub.add_parser("show", help="one incident: tickets, delivery, timeline"))
    p.add_argument("id", help="incident id or fingerprint")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_command(cmd_incidents_show))


def _state(config: Any, *, create: bool) -> Any:
    from hostwarden.agent.core.paths import ensure_dir
    from hostwarden.agent.incidents.state import StateDB

    path = os.path.join(config.state_dir, "state.db")
    if not os.path.exists(path):
        if not create:
            return None
        ensure_dir(config.state_dir)
    state = StateDB(path)
    if state.degraded:
        raise CommandError(f"the state database {path} cannot be written; nothing was changed")
    return state


def _parse_time(text: str, what: str) -> float:
    from hostwarden.agent.incidents.silence import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise CommandError(f"{what}: {e}", EXIT_USAGE) from None


def silence_json(s: Any, now: float) -> dict[str, Any]:
    return {"id": s.id, "matchers": [str(m) for m in s.matchers], "state": s.state(now),
            "starts_at": iso_time(s.starts_at), "ends_at": iso_time(s.ends_at), "created_by": s.created_by,
            "comment": s.comment, "created_at": iso_time(s.created_at)}


# -- silence -------------------------------------------------------------------------------------------------------

def cmd_silence_add(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.silence import parse_matcher
    from hostwarden.agent.incidents.suppress import add_silence

    try:
        matchers = [parse_matcher(m) for m in args.match]
    except ValueError as e:
        raise CommandError(f"--match: {e}", EXIT_USAGE) from None
    now = time.time()
    start = _parse_time(args.start, "--start") if args.start else now
    if args.end:
        end = _parse_time(args.end, "--end")
    else:
        try:
            end = start + parse_duration(args.duration)
        except ValueError as e:
            raise CommandError(f"--duration: {e}", EXIT_USAGE) from None
    config = load_agent_config(args)
    state = _state(config, create=True)
    try:
        s = add_silence(state, matchers, starts_at=start, ends_at=end, created_by=who(args), comment=args.comment,
                        now=now)
    except ValueError as e:
        raise CommandError(str(e), EXIT_USAGE) from None
    finally:
        state.close()
    print(json.dumps(silence_json(s, now), indent=2) if args.format == "json" else s.id)
    return EXIT_OK


def cmd_silence_list(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.suppress import list_silences

    config = load_agent_config(args)
    state = _state(config, create=False)
    now = time.time()
    silences = list_silences(state, now=now, include_expired=args.expired) if state is not None else []
    if args.format == "json":
        print(json.dumps([silence_json(s, now) for s in silences], indent=2))
        return EXIT_OK
    if not silences:
        print("no silences" + ("" if args.expired else " in effect or pending"))
        return EXIT_OK
    rows = []
    for s in silences:
        left = f"ends in {human_duration(s.ends_at - now)}" if s.active(now) else s.state(now)
        rows.append([s.id, s.state(now), safe(" ".join(str(m) for m in s.matchers)), local_time(s.starts_at),
                     local_time(s.ends_at), left, safe(s.created_by), safe(" ".join(s.comment.split()))[:60]])
    print(table(rows, ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "", "BY", "COMMENT"]))
    return EXIT_OK


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.suppress import expire_silence

    config = load_agent_config(args)
    state = _state(config, create=False)
    if state is None:
        raise CommandError("no silences (the state database does not exist yet)")
    missing = []
    for ident in args.id:
        try:
            s = expire_silence(state, ident, time.time())
        except ValueError as e:
            raise CommandError(str(e), EXIT_USAGE) from None
        if s is None:
            missing.append(ident)
        else:
            print(f"silence {s.id} expired")
    if missing:
        raise CommandError(f"no silence in effect or pending with id {', '.join(missing)} (see `hostwarden silence "
                           f"list`)")
    return EXIT_OK


# -- incidents -----------------------------------------------------------------------------------------------------

def cmd_incidents_list(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.listing import list_incidents

    statuses: list[str] = []
    for v in args.status:
        for s in filter(None, (x.strip() for x in v.split(","))):
            if s not in ("open", "resolved"):
                raise CommandError(f"unknown status {s!r}; one of open, resolved", EXIT_USAGE)
            statuses.append(s)
    since = None
    if args.since:
        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as e:
            raise CommandError(f"--since: {e}", EXIT_USAGE) from None
    config = load_agent_config(args)
    state = _state(config, create=False)
    items = list_incidents(state, statuses=tuple(statuses), backend=args.backend, since=since,
                           limit=args.limit) if state is not None else []
    if args.format == "json":
        print(json.dumps([_json_times(i) for i in items], indent=2))
        return EXIT_OK
    if not items:
        print("no incidents")
        return EXIT_OK
    rows = []
    for i in items:
        tickets = " ".join(f"{t['backend']}:{t['id'] or '-'}({t['delivery']})" for t in i["tickets"]) or "-"
        status = i["status"] + (" silenced" if i["silenced_by"] else "")
        rows.append([str(i["id"]), status, i["priority"], local_time(i["opened_at"]), local_time(i["resolved_at"]),
                     safe(tickets)[:60], safe(" ".join(i["title"].split()))[:70]])
    print(table(rows, ["ID", "STATUS", "PRIO", "OPENED", "RESOLVED", "TICKETS", "TITLE"]))
    return EXIT_OK


def _json_times(i: dict[str, Any]) -> dict[str, Any]:
    out = dict(i)
    for k in ("opened_at", "fired_at", "acknowledged_at", "resolved_at"):
        out[k] = iso_time(i[k])
    if "timeline" in out:
        out["timeline"] = [{**e, "at": iso_time(e["at"])} for e in out["timeline"]]
    return out


def cmd_incidents_show(args: argparse.Namespace) -> int:
    from hostwarden.agent.incidents.listing import find_incident

    config = load_agent_config(args)
    state = _state(config, create=False)
    inc = find_incident(state, args.id) if state is not None else None
    if inc is None:
        raise CommandError(f"no incident {args.id!r} (see `hostwarden incidents list`)")
    if args.format == "json":
        print(json.dumps(_json_times(inc), indent=2))
        return EXIT_OK
    lines = [f"#{inc['id']}  {inc['title']}",
             f"status:      {inc['status']}" + (f" (held by {inc['silenced_by']})" if inc["silenced_by"] else ""),
             f"priority:    {inc['priority']}   category: {inc['category'] or '-'}   "
             f"severity: {inc['severity'] or '-'}",
             f"rule:        {inc['rule']} on {inc['host']}",
             f"fingerprint: {inc['fingerprint']}",
             f"opened:      {local_time(inc['opened_at'])}"]
    if inc["acknowledged_at"] is not None:
        lines.append(f"acknowledged: {local_time(inc['acknowledged_at'])}")
    if inc["resolved_at"] is not None:
        lines.append(f"resolved:    {local_time(inc['resolved_at'])}")
    if inc["labels"]:
        lines.append("labels:      " + " ".join(f"{k}={v}" for k, v in sorted(inc["labels"].items())))
    lines += ["", "tickets:"]
    for t in inc["tickets"] or [{"backend": "-", "id": None, "url": "", "delivery": "none", "last_error": "",
                                 "attempts": 0, "dead_outbox_ids": []}]:
        line = f"  {t['backend']}: {t['id'] or '-'} {t['url']}".rstrip() + f"  [{t['delivery']}]"
        if t["last_error"]:
            line += f" after {t['attempts']} attempt(s): {' '.join(t['last_error'].split())[:120]}"
        if t["dead_outbox_ids"]:
            line += f" (`hostwarden tickets retry {t['dead_outbox_ids'][0]}`)"
        if t.get("remote_state"):
            line += f"  {t['remote_state']} there"
        lines.append(line)
    lines += ["", "timeline:"]
    for e in inc["timeline"]:
        text = str(e["text"]).replace("\n", "\n" + " " * 24)
        lines.append(f"  {local_time(e['at'])}  {e['kind']}: {text}")
    print(safe("\n".join(lines)))
    return EXIT_OK

"""Every incident in one place (`hostwarden incidents list|show`): the state database is the system of record.

Whatever backend an incident went to (local, webhook, Redmine, … or several of them), the incident row,
its timeline and its outbox rows are here. Per backend, the delivery state of its ticket:
- `delivered`: the ticket exists (id, URL) and nothing is waiting;
- `pending`: operations are queued (retrying after an error: `last_error`, `attempts`);
- `dead`: an operation was dead-lettered (`hostwarden tickets retry ID`);
- `silenced`: held back by a silence or maintenance window (no ticket yet, or updates paused);
- `none`: never sent (a storm member, or it fired and cleared inside a silence).
"""

from __future__ import annotations

import json
from typing import Any

from hostwarden.agent.incidents.state import StateDB

INCIDENT_FIELDS = ("id", "fingerprint", "status", "rule", "title", "severity", "priority", "category", "host",
                   "opened_at", "fired_at", "acknowledged_at", "resolved_at", "reopen_count", "silenced_by")


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _tickets(state: StateDB, inc: dict[str, Any]) -> list[dict[str, Any]]:
    backends = [b for b in [inc["backend"], *_loads(inc["extra_backends"], [])] if b]
    refs = {r["backend"]: (r["ticket_id"], r["ticket_url"], r["remote_state"]) for r in state.query(
        "SELECT backend, ticket_id, ticket_url, remote_state FROM incident_tickets WHERE incident_id = ?",
        (inc["id"],))}
    if inc["ticket_id"] and inc["backend"] not in refs:  # recorded before incident_tickets existed
        refs[inc["backend"]] = (inc["ticket_id"], inc["ticket_url"], "")
    if inc["backend"] in refs:  # the first backend's sync state is kept on the incident row
        refs[inc["backend"]] = (*refs[inc["backend"]][:2], inc["remote_state"])
    queue: dict[str, dict[str, Any]] = {}
    for r in state.query("SELECT backend, status, attempts, last_error, id FROM outbox WHERE incident_id = ? "
                         "ORDER BY id", (inc["id"],)):
        q = queue.setdefault(r["backend"], {"pending": 0, "dead": 0, "done": 0, "last_error": "", "attempts": 0,
                                            "dead_ids": []})
        if r["status"] in ("pending", "dead", "done"):
            q[r["status"]] += 1
        if r["status"] == "dead":
            q["dead_ids"].append(int(r["id"]))
        if r["status"] in ("pending", "dead") and r["last_error"]:
            q["last_error"], q["attempts"] = r["last_error"], int(r["attempts"])
    out = []
    held = bool(inc["silenced_by"])
    for b in backends:
        q = queue.get(b, {"pending": 0, "dead": 0, "done": 0, "last_error": "", "attempts": 0, "dead_ids": []})
        tid, url, remote = refs.get(b, (None, "", ""))
        if q["dead"]:
            delivery = "dead"
        elif q["pending"]:
            delivery = "pending"
        elif held:
            delivery = "silenced"
        elif tid:
            delivery = "delivered"
        else:
            delivery = "none"
        out.append({"backend": b, "id": tid, "url": url or "", "delivery": delivery, "pending": q["pending"],
                    "dead": q["dead"], "dead_outbox_ids": q["dead_ids"], "attempts": q["attempts"],
                    "last_error": q["last_error"], "primary": b == inc["backend"],
                    "remote_state": remote or None})  # what the ticket system last said (two-way sync)
    return out


def incident_json(state: StateDB, inc: dict[str, Any], *, timeline: bool = False) -> dict[str, Any]:
    out = {k: inc[k] for k in INCIDENT_FIELDS}
    out["labels"] = dict(_loads(inc["labels"], []))
    out["storm"] = bool(inc["is_storm"])
    out["storm_id"] = inc["storm_id"]
    out["tickets"] = _tickets(state, inc)
    if timeline:
        out["timeline"] = [{"at": float(e["at"]), "kind": e["kind"], "text": e["text"]} for e in state.query(
            "SELECT at, kind, text FROM incident_events WHERE incident_id = ? ORDER BY id", (inc["id"],))]
        out["diagnosis"] = inc["diagnosis"]
    return out


def list_incidents(state: StateDB, *, statuses: tuple[str, ...] = (), backend: str | None = None,
                   since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    where, params = [], []
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += list(statuses)
    if since is not None:
        where.append("(opened_at >= ? OR resolved_at IS NULL OR resolved_at >= ?)")
        params += [since, since]
    sql = "SELECT * FROM incidents" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC LIMIT ?"
    rows = [dict(r) for r in state.query(sql, (*params, limit))]
    out = [incident_json(state, r) for r in rows]
    if backend is not None:
        out = [i for i in out if any(t["backend"] == backend for t in i["tickets"])]
    return out


def find_incident(state: StateDB, ident: str) -> dict[str, Any] | None:
    """By id, or by fingerprint (its latest incident)."""
    if ident.isdigit():
        rows = state.query("SELECT * FROM incidents WHERE id = ?", (int(ident),))
    else:
        rows = state.query("SELECT * FROM incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1", (ident,))
    return incident_json(state, dict(rows[0]), timeline=True) if rows else None

"""`hostwarden tickets preview RULE`: the ticket a rule would open, rendered exactly, sent nowhere.

The example alert is the rule's own: its labels and annotations rendered by its templates with the
given (or default) labels and value — the value defaults to just past the threshold of the chosen
severity — then the same incident manager (routing, priority, SLA, title, diagnosis) and the routed
backend's own rendering (`preview(incident)` when the backend has one, else the plain ticket body).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hostwarden.agent.core.incident import incident_to_dict
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets import render


class PreviewError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _find_rule(config: Any, name: str) -> tuple[Any, Any]:
    from hostwarden.rules.loader import load_rule_files

    errors = Errors()
    groups = load_rule_files(config.rule_files, errors, default_interval=config.evaluation_interval)
    if errors:
        raise PreviewError("\n".join(str(i) for i in errors.issues), 2)
    names = []
    for g in groups:
        for r in g.rules:
            if r.kind == "alert":
                names.append(r.name)
                if r.name == name:
                    return g, r
    from hostwarden.agent.core.schema import did_you_mean

    raise PreviewError(f"no alert rule {name!r} in {len(config.rule_files)} rule file(s)" + did_you_mean(name, names),
                       2)


def example_alert(group: Any, rule: Any, *, labels: dict[str, str], value: float | None, severity: str | None,
                  external_labels: dict[str, str], now: float) -> Any:
    from hostwarden.agent.core.alert import AlertState
    from hostwarden.rules.engine import AlertRecord, RuleState
    from hostwarden.rules.templates import TemplateData

    if severity is None:
        severity = "critical" if rule.critical is not None else ("warning" if rule.warning is not None else
                                                                 _label_severity(rule, labels, external_labels))
    if value is None:
        thr = rule.threshold(severity) or rule.critical or rule.warning
        value = thr.value if thr is not None else 1.0
        if thr is not None and thr.op in (">", "<"):
            value += 0.01 * (1 if thr.op == ">" else -1) * max(abs(thr.value), 1.0)
    data = TemplateData(labels=dict(labels), value=value, external_labels=external_labels)
    final = dict(labels)
    for k, t in rule.labels:
        v = t.render(data)
        if v:
            final[k] = v
        else:
            final.pop(k, None)
    final["alertname"] = rule.name
    if rule.extended:
        final.pop("severity", None)
    annotations = tuple((k, t.render(data)) for k, t in rule.annotations)
    state = RuleState(rule, group=group.name, external_labels=external_labels)
    rec = AlertRecord(labels=tuple(sorted(final.items())), value=value, annotations=annotations,
                      state=AlertState.FIRING, severity=severity, announced_severity=severity,
                      active_since=now - rule.for_, fired_at=now, history=deque(maxlen=1), last_eval=now)
    return state.snapshot(rec)


def _label_severity(rule: Any, labels: dict[str, str], external_labels: dict[str, str]) -> str:
    """A plain rule's severity: its `severity` label (rendered for the example), as the engine does."""
    from hostwarden.rules.engine import DEFAULT_SEVERITY
    from hostwarden.rules.templates import TemplateData

    data = TemplateData(labels=dict(labels), value=1.0, external_labels=external_labels)
    for k, t in rule.labels:
        if k == "severity":
            return t.render(data) or DEFAULT_SEVERITY
    return labels.get("severity") or DEFAULT_SEVERITY


def preview_rule(config: Any, tickets: Any, rule_name: str, *, labels: dict[str, str], value: float | None,
                 severity: str | None, diagnose: bool, now: float) -> dict[str, Any]:
    from hostwarden.agent.core.store import SeriesStore
    from hostwarden.agent.incidents.diagnosis import Diagnoser
    from hostwarden.agent.incidents.manager import IncidentManager
    from hostwarden.agent.incidents.outbox import BackendInitError, build_backends
    from hostwarden.agent.incidents.runbooks import agent_urls

    group, rule = _find_rule(config, rule_name)
    alert = example_alert(group, rule, labels=labels, value=value, severity=severity,
                          external_labels=config.external_labels, now=now)
    manager = IncidentManager(tickets, state=StateDB(":memory:"), hostname=config.hostname,
                              external_labels=config.external_labels,
                              diagnose=Diagnoser(SeriesStore()) if diagnose else None)
    manager.runbook_base_url = agent_urls(config, tls=False)[1]  # as the agent resolves it (http unless external_url)
    backend_name, incident = manager.preview(alert, now)
    rendered: dict[str, Any] = {}
    if backend_name:
        try:
            backends = build_backends(tickets, state_dir=config.state_dir, check_only=True)
        except BackendInitError as e:
            raise PreviewError(str(e), 2) from None
        backend = backends[backend_name]
        hook = getattr(backend, "preview", None)
        rendered = hook(incident) if callable(hook) else {"title": render.render_title(incident),
                                                           "body": render.render_body(incident, "plain")}
    cfg = tickets.backend(backend_name) if backend_name else None
    lines = [f"Rule:        {rule.name} ({rule.source})",
             f"Backend:     {backend_name or '(none: ticketing is off)'}" + (f" ({cfg.type})" if cfg else ""),
             f"Fingerprint: {incident.fingerprint}",
             f"Title:       {render.render_title(incident)}",
             f"Priority:    {incident.priority}  (severity {alert.severity}, category {incident.category or '-'})",
             f"SLA:         acknowledge within {_human(incident.extra_fields['ack_due'] - now)}, "
             f"resolve within {_human(incident.extra_fields['resolve_due'] - now)}",
             f"Labels:      {' '.join(f'{k}={v}' for k, v in incident.labels)}", ""]
    if rendered:
        lines.append(f"--- what {backend_name} would receive ---")
        for k, v in rendered.items():
            if isinstance(v, str) and "\n" in v:
                lines.append(f"{k}:")
                lines.append(v.rstrip())
            else:
                import json

                lines.append(f"{k}: {v if isinstance(v, str) else json.dumps(v, indent=2, default=str)}")
    return {"rule": rule.name, "source": rule.source, "backend": backend_name,
            "incident": incident_to_dict(incident), "rendered": rendered, "text": "\n".join(lines) + "\n"}


def _human(seconds: float) -> str:
    from hostwarden.agent.core.units import human_duration

    return human_duration(seconds)

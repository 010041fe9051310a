"""The ticket backend contract, shared by the outbox dispatcher and every backend module.

A backend module defines a frozen config dataclass (fields = YAML keys under `tickets.backends[]`,
inheriting `BackendConfig`) and a class registered with `@register("type")` whose constructor
takes that config. Backends say *whether* to retry (TransientError vs PermanentError); *how* to
back off, order and rate-limit lives once, in agent/outbox.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hostwarden.agent.core.registry import Registry
from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.schema import Duration
from hostwarden.rules.alerts import Alert


class TransientError(Exception):
    """Timeouts, connection refused, 5xx, 429: retry later. `retry_after` seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Bad credentials, validation errors (400/401/403/404/422): dead-letter, count, log once."""


@dataclass(frozen=True, slots=True)
class TicketRef:
    backend: str  # the backend's configured name
    id: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float
    kind: str  # opened | updated | escalated | deescalated | flapping | resolved | reopened | acknowledged | comment
    text: str


@dataclass(frozen=True)
class Incident:
    """What a backend needs to render and file a ticket: a snapshot, never mutated in place."""

    fingerprint: str
    alert: Alert
    title: str
    priority: str  # P1..P4
    category: str
    host: str
    labels: Labels  # identity labels + external labels
    opened_at: float
    diagnosis: str = ""  # plain text (markdown-safe), bounded in size
    ticket_ref: TicketRef | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    reopen_count: int = 0
    timeline: tuple[TimelineEntry, ...] = ()
    storm_of: tuple[str, ...] = ()  # for a storm ticket: the fingerprints it groups
    extra_fields: dict[str, Any] = field(default_factory=dict)  # backend field mapping results


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """What polling a ticket tells us (two-way sync)."""

    ref: TicketRef
    state: Literal["open", "acknowledged", "resolved", "closed", "missing"]
    assignee: str = ""
    changed_at: float | None = None


@dataclass(frozen=True)
class BackendConfig:
    """Keys every backend accepts."""

    name: str
    type: str = ""
    dry_run: bool = False  # log what would be sent, send nothing
    timeout: Duration = Duration(10)
    on_resolve: Literal["resolve", "comment"] = "resolve"
    rate_limit: float = 1.0  # operations per second (token bucket refill)
    burst: int = 10
    tls_verify: bool = True
    ca_file: str | None = None
    match: dict[str, str] = field(default_factory=dict)  # shorthand for routing


class TicketBackend(Protocol):
    name: str

    def find(self, fingerprint: str) -> TicketRef | None: ...  # the dedup key lives in the ticket
    def open(self, incident: Incident) -> TicketRef: ...
    def update(self, ref: TicketRef, incident: Incident, event: str) -> None: ...
    def resolve(self, ref: TicketRef, incident: Incident) -> None: ...
    def reopen(self, ref: TicketRef, incident: Incident) -> None: ...


class PollingBackend(Protocol):
    """Optional: backends whose tickets people act on (ack, assign, close) implement this."""

    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]: ...


_IDEMPOTENCY_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("hostwarden_idempotency_key", default="")


def idempotency_key() -> str:
    """The key of the outbox operation being delivered: the same on every retry of that operation, different
    for every other operation. Backends that cannot be searched send it (an `Idempotency-Key` header, a
    Message-ID) so the receiver can drop repeats. Empty outside a delivery (e.g. `tickets preview`)."""
    return _IDEMPOTENCY_KEY.get()


def set_idempotency_key(key: str) -> contextvars.Token[str]:
    """Used by the outbox around each delivery; undo with `reset_idempotency_key(token)`."""
    return _IDEMPOTENCY_KEY.set(key)


def reset_idempotency_key(token: contextvars.Token[str]) -> None:
    _IDEMPOTENCY_KEY.reset(token)


# Every module that registers a backend; imported on first use of the registry.
ALL_MODULES: tuple[str, ...] = (
    "hostwarden.exporters.tickets.local",
    "hostwarden.exporters.tickets.webhook",
    "hostwarden.exporters.tickets.redmine",
    "hostwarden.exporters.tickets.rt",
    "hostwarden.exporters.tickets.jira",
    "hostwarden.exporters.tickets.servicenow",
    "hostwarden.exporters.tickets.zammad",
    "hostwarden.exporters.tickets.github",
    "hostwarden.exporters.tickets.email",
    "hostwarden.exporters.tickets.alertmanager",
)


_REGISTRY = Registry("ticket backend", ALL_MODULES, "type_name")
register = _REGISTRY.register
registry = _REGISTRY.classes
get_backend_class = _REGISTRY.get  # imports just that backend's module
backend_names = _REGISTRY.names

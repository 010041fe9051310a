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
from typing import Literal, Protocol

from hostwarden.agent.core.incident import (
    Incident,
    PermanentError,
    RemoteStatus,
    TicketRef,
    TimelineEntry,
    TransientError,
)
from hostwarden.agent.core.registry import Registry
from hostwarden.agent.core.schema import Duration

# The value types are defined in agent.core.incident (the lowest layer) and re-exported for backend modules.
__all__ = ["ALL_MODULES", "BackendConfig", "Incident", "PermanentError", "PollingBackend", "RemoteStatus",
           "TicketBackend", "TicketRef", "TimelineEntry", "TransientError", "idempotency_key", "register", "registry",
           "reset_idempotency_key", "set_idempotency_key"]


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

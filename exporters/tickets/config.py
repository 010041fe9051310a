"""The `tickets:` section of the agent config: backends, routing, incident timing, priorities and SLAs.

```yaml
tickets:
  backends:                       # default: [{name: local, type: local}]
    - {name: ops, type: local}
    - {name: hook, type: webhook, url: "https://hooks.example.com/hostwarden", token_env: HOOK_TOKEN}
  route:                          # first match wins; default: a backend's own `match:`, then the first backend
    - {match: {team: db}, backend: hook}
    - {match: {severity: critical}, backends: [ops, hook]}   # several: one ticket in each, own outbox queue
  reopen_window: 1h               # re-firing within this after the resolve reopens the ticket; 0s: never reopen
  update_interval: 5m             # at most one ticket update per incident per interval
  storm_threshold: 20             # more incidents than this within storm_window go into one storm ticket
  storm_window: 1m
  poll_interval: 5m               # two-way sync with backends that can be polled
  priorities: {critical: {availability: P1, default: P2}}
  default_priority: P3
  sla: {P1: {acknowledge: 15m, resolve: 4h}}
```
Each backend's keys are its module's Config dataclass (a subclass of `BackendConfig`), chosen by `type:`.
`backends: []` turns ticketing off: incidents are still tracked in the state database.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hostwarden.agent.core.priority import PRIORITIES, PriorityPolicy, build_policy
from hostwarden.agent.core.schema import MISSING, Duration, Errors, Regex, build, build_tagged
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList
from hostwarden.exporters.tickets.base import BackendConfig, backend_names, get_backend_class

Priority = Literal["P1", "P2", "P3", "P4"]


@dataclass(frozen=True)
class RouteConfig:
    backend: str = ""
    match: dict[str, str] = field(default_factory=dict)  # label = value, all must hold
    match_re: dict[str, Regex] = field(default_factory=dict)  # label fully matches the regex
    backends: list[str] = field(default_factory=list)  # instead of `backend`: several, the first is the primary

    def validate(self) -> list[str]:
        if bool(self.backend) == bool(self.backends):
            return ["a route needs exactly one of `backend: NAME` or `backends: [NAME, ...]`"]
        if len(set(self.backends)) != len(self.backends):
            return [f"backends: {self.backends} names a backend twice"]
        return []

    @property
    def targets(self) -> list[str]:
        return list(self.backends) if self.backends else [self.backend]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k, "") != v for k, v in self.match.items()):
            return False
        return all(re.fullmatch(rx, labels.get(k, "")) for k, rx in self.match_re.items())


@dataclass(frozen=True)
class SlaConfig:
    acknowledge: Duration | None = None
    resolve: Duration | None = None


@dataclass(frozen=True)
class TicketsConfig:
    backends: tuple[BackendConfig, ...] = ()
    route: list[RouteConfig] = field(default_factory=list)
    reopen_window: Duration = Duration(3600)
    update_interval: Duration = Duration(300)
    storm_threshold: int = 20
    storm_window: Duration = Duration(60)
    poll_interval: Duration = Duration(300)
    priorities: dict[str, dict[str, Priority]] = field(default_factory=dict)
    default_priority: Priority = "P3"
    sla: dict[str, SlaConfig] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if self.storm_threshold < 1:
            problems.append("storm_threshold must be at least 1")
        if self.storm_window <= 0:
            problems.append("storm_window must be positive")
        if self.poll_interval <= 0:
            problems.append("poll_interval must be positive")
        return problems

    def backend(self, name: str) -> BackendConfig | None:
        return next((b for b in self.backends if b.name == name), None)

    def route_for(self, labels: Mapping[str, str]) -> str | None:
        """The (primary) backend name an incident with these labels goes to; None when ticketing is off."""
        targets = self.routes_for(labels)
        return targets[0] if targets else None

    def routes_for(self, labels: Mapping[str, str]) -> list[str]:
        """Every backend an incident with these labels goes to, the primary first; [] when ticketing is off."""
        for r in self.route:
            if r.matches(labels):
                return r.targets
        for b in self.backends:
            if b.match and all(labels.get(k, "") == v for k, v in b.match.items()):
                return [b.name]
        return [self.backends[0].name] if self.backends else []

    def policy(self) -> PriorityPolicy:
        return build_policy(self.priorities, self.default_priority,
                            {p: (s.acknowledge, s.resolve) for p, s in self.sla.items()})


def default_backend() -> BackendConfig:
    cls = get_backend_class("local").Config  # type: ignore[union-attr]
    return cls(name="local", type="local")


def _config_classes() -> dict[str, Any]:
    # a backend's module (and its HTTP/SMTP libraries) is imported only when the config names its type
    return {name: (lambda n=name: get_backend_class(n).Config) for name in backend_names()}  # type: ignore[union-attr]


def parse_backends(node: Any, errors: Errors, loc: Loc) -> tuple[BackendConfig, ...] | Any:
    if not isinstance(node, list):
        errors.add(loc, f"tickets.backends: expected a list of backends, got {node!r}")
        return MISSING
    classes = _config_classes()
    out: list[BackendConfig] = []
    names: dict[str, Loc] = {}
    ok = True
    for i, item in enumerate(node):
        iloc = node.item_loc(i) if isinstance(node, LocList) else loc
        cfg = build_tagged(classes, item, errors, loc=iloc, path=f"tickets.backends[{i}]")
        if cfg is MISSING:
            ok = False
            continue
        cfg = dataclasses.replace(cfg, type=str(item["type"]))
        if cfg.name in names:
            errors.add(iloc, f"tickets.backends[{i}]: backend name {cfg.name!r} is already used at {names[cfg.name]}")
            ok = False
            continue
        names[cfg.name] = iloc
        out.append(cfg)
    return tuple(out) if ok else MISSING


def parse_tickets(node: Any, errors: Errors, loc: Loc, base_dir: str) -> TicketsConfig | Any:
    """Parse `tickets:`; None or an empty mapping gives the defaults (the `local` backend)."""
    if node is None:
        node = {}
    if not isinstance(node, dict):
        errors.add(loc, f"tickets: expected a mapping, got {node!r}")
        return MISSING
    before = len(errors.issues)
    cfg = build(TicketsConfig, node, errors, loc=getattr(node, "loc", loc), path="tickets", ignore=("backends",))
    if "backends" in node:
        bloc = node.value_loc("backends") if isinstance(node, LocDict) else loc
        backends = parse_backends(node["backends"] if node["backends"] is not None else [], errors, bloc)
    else:
        backends = (default_backend(),)
    _check_references(node, backends, errors, loc)
    if cfg is MISSING or backends is MISSING:
        return MISSING
    cfg = dataclasses.replace(cfg, backends=backends)
    return cfg if len(errors.issues) == before else MISSING


def _check_references(node: Any, backends: Any, errors: Errors, loc: Loc) -> None:
    """Checks on the raw YAML, so they are reported even when another key of the section is wrong."""
    sla = node.get("sla")
    if isinstance(sla, dict):
        for key in sla:
            if key not in PRIORITIES:
                kloc = sla.key_loc(key) if isinstance(sla, LocDict) else loc
                errors.add(kloc, f"tickets.sla: unknown priority {key!r} (one of {', '.join(PRIORITIES)})")
    if backends is MISSING:
        return  # names unknown: the backend errors say enough
    names = {b.name for b in backends}
    rnode = node.get("route")
    if not isinstance(rnode, list):
        return
    for i, r in enumerate(rnode):
        target = r.get("backend") if isinstance(r, dict) else None
        several = r.get("backends") if isinstance(r, dict) else None
        targets = [target] + (list(several) if isinstance(several, list) else [])
        for t in targets:
            if isinstance(t, str) and t not in names:
                rloc = rnode.item_loc(i) if isinstance(rnode, LocList) else loc
                errors.add(rloc, f"tickets.route[{i}]: unknown backend {t!r}; configured: "
                                 f"{', '.join(sorted(names)) or 'none'}")

"""systemd unit states over D-Bus, as node_exporter's `systemd` collector (disabled by default, as there).

- `node_systemd_unit_state{name,state,type}`: 1 for the unit's current ActiveState among
  node_exporter's five (active, activating, deactivating, inactive, failed), 0 for the others.
  `type` is the service's Type= (simple, forking, notify, oneshot, …) for .service units and the
  filesystem type for .mount units, empty otherwise — node_exporter's meaning, not the unit suffix.
- `node_systemd_units{state}`: units per ActiveState, over every unit systemd lists (before the filters).
- `node_systemd_system_running`: 1 when `systemctl is-system-running` would say "running".
- `node_systemd_version{version}`: the manager's version (read once), e.g. 252.19.
- for the selected .socket units `node_systemd_socket_{accepted_connections_total,current_connections,
  refused_connections_total}` and .timer units `node_systemd_timer_last_trigger_seconds`, as node_exporter
  1.5 (its refused count is a gauge there too).

Only loaded units whose name fully matches `unit_include` and not `unit_exclude` get per-unit series
(node_exporter's flags and default exclude of 1.5.0). `max_units` caps them beyond that: 5 series
per unit, so the default 1000 bounds the family to 5000 series whatever the filters let through;
the cut is logged once per change. Everything runs on one D-Bus connection (the same `SystemdBus`
the systemd check uses), reused across cycles, within `timeout` (a call past it raises: the run fails,
the connection is reopened next cycle). A unit's Type= is read once and kept while the unit is listed,
re-read every `type_refresh` (a daemon-reload may change it; its signal is not watched).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Duration, Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.check_systemd import DEFAULT_BUS, MANAGER, STATES, SYSTEMD, SystemdBus
from jeepney import DBusErrorResponse

log = logging.getLogger(__name__)

DEFAULT_EXCLUDE = r".+\.(automount|device|mount|scope|slice)"  # node_exporter 1.5.0 --collector.systemd.unit-exclude
MANAGER_PATH = "/org/freedesktop/systemd1"
SOCKET_PROPS = (("NAccepted", "node_systemd_socket_accepted_connections_total"),
                ("NConnections", "node_systemd_socket_current_connections"),
                ("NRefused", "node_systemd_socket_refused_connections_total"))  # NRefused: systemd >= 239
_VERSION = re.compile(r"[0-9]{3,}(\.[0-9]+)?")
TYPE_INTERFACES = {".service": f"{SYSTEMD}.Service", ".mount": f"{SYSTEMD}.Mount"}


@dataclass(frozen=True)
class SystemdUnitsConfig(CollectorConfig):
    unit_include: Regex = Regex(".+")
    unit_exclude: Regex = Regex(DEFAULT_EXCLUDE)
    max_units: int = 1000
    timeout: Duration = Duration(5.0)
    type_refresh: Duration = Duration(3600.0)
    bus_address: str | None = None  # default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket

    def validate(self) -> list[str]:
        problems = []
        if self.max_units < 1:
            problems.append("max_units must be at least 1")
        if self.timeout <= 0:
            problems.append("timeout must be positive")
        return problems


@dataclass(frozen=True, slots=True)
class Unit:
    name: str
    load_state: str
    active_state: str
    path: str


@register("systemd")
class SystemdCollector:
    Config = SystemdUnitsConfig
    metrics = metric_defs(
        MetricDef("node_systemd_unit_state", "gauge", "Systemd unit", ("name", "state", "type")),
        MetricDef("node_systemd_units", "gauge", "Summary of systemd unit states", ("state",)),
        MetricDef("node_systemd_system_running", "gauge",
                  "Whether the system is operational (see 'systemctl is-system-running')"),
        MetricDef("node_systemd_version", "gauge", "Detected systemd version", ("version",)),
        MetricDef("node_systemd_socket_accepted_connections_total", "counter",
                  "Total number of accepted socket connections", ("name",)),
        MetricDef("node_systemd_socket_current_connections", "gauge", "Current number of socket connections",
                  ("name",)),
        MetricDef("node_systemd_socket_refused_connections_total", "gauge",
                  "Total number of refused socket connections", ("name",)),
        MetricDef("node_systemd_timer_last_trigger_seconds", "gauge", "Seconds since epoch of last trigger.",
                  ("name",)),
    )

    def __init__(self, config: SystemdUnitsConfig | None = None) -> None:
        self.config = config or SystemdUnitsConfig()
        address = self.config.bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_BUS
        self.bus = SystemdBus(address)
        self._include = re.compile(self.config.unit_include)
        self._exclude = re.compile(self.config.unit_exclude)
        self._types: dict[str, str] = {}  # unit name -> Type= ("" when it has none)
        self._types_at = 0.0
        self._labels: dict[tuple[str, str], tuple[Labels, ...]] = {}
        self._capped = 0
        self._version: Sample | None = None

    def close(self) -> None:
        self.bus.close()

    def _selected(self, name: str) -> bool:
        return self._include.fullmatch(name) is not None and self._exclude.fullmatch(name) is None

    def _type(self, unit: Unit, deadline: float) -> str:
        got = self._types.get(unit.name)
        if got is not None:
            return got
        iface = TYPE_INTERFACES.get(unit.name[unit.name.rfind("."):]) if "." in unit.name else None
        value = ""
        if iface is not None:
            try:
                value = str(self.bus.get_property(unit.path, iface, "Type", deadline))
            except DBusErrorResponse:
                value = ""  # the unit went away meanwhile, or an old systemd
        self._types[unit.name] = value
        return value

    def _unit_labels(self, name: str, utype: str) -> tuple[Labels, ...]:
        key = (name, utype)
        lab = self._labels.get(key)
        if lab is None:
            lab = self._labels[key] = tuple((("name", name), ("state", s), ("type", utype)) for s in STATES)
        return lab

    def collect(self, now: float) -> Iterable[Sample]:
        deadline = time.monotonic() + float(self.config.timeout)
        try:
            return self._collect(now, deadline)
        except Exception:
            self.bus.close()  # unknown socket state after a failure: reconnect next cycle
            raise

    def _collect(self, now: float, deadline: float) -> list[Sample]:
        (rows,) = self.bus.call(MANAGER, "ListUnits", None, (), deadline)
        units = [Unit(r[0], r[2], r[3], r[6]) for r in rows]
        summary = dict.fromkeys(STATES, 0)
        for u in units:
            summary[u.active_state] = summary.get(u.active_state, 0) + 1
        out = [Sample("node_systemd_units", (("state", s),), float(n), now) for s, n in sorted(summary.items())]
        selected = sorted((u for u in units if u.load_state == "loaded" and self._selected(u.name)),
                          key=lambda u: u.name)
        cut = max(0, len(selected) - self.config.max_units)
        if cut != self._capped:
            if cut:
                log.warning("systemd: %d units match the filters, reporting the first %d (max_units); narrow "
                            "unit_include/unit_exclude", len(selected), self.config.max_units)
            self._capped = cut
        selected = selected[: self.config.max_units]
        if time.monotonic() - self._types_at > float(self.config.type_refresh):
            self._types, self._types_at = {}, time.monotonic()
        present = set()
        for u in selected:
            present.add(u.name)
            for labels, state in zip(self._unit_labels(u.name, self._type(u, deadline)), STATES, strict=True):
                out.append(Sample("node_systemd_unit_state", labels, 1.0 if u.active_state == state else 0.0, now))
        if len(self._types) > len(present):
            self._types = {k: v for k, v in self._types.items() if k in present}
            self._labels = {k: v for k, v in self._labels.items() if k[0] in present}
        for u in selected:
            if u.name.endswith(".socket"):
                out.extend(self._socket(u, now, deadline))
            elif u.name.endswith(".timer"):
                out.extend(self._timer(u, now, deadline))
        state = self.bus.get_property(MANAGER_PATH, f"{SYSTEMD}.Manager", "SystemState", deadline)
        out.append(Sample("node_systemd_system_running", (), 1.0 if state == "running" else 0.0, now))
        version = self._version or self._read_version(deadline)
        if version is not None:
            out.append(Sample(version.name, version.labels, version.value, now))
        return out

    def _read_version(self, deadline: float) -> Sample | None:
        full = str(self.bus.get_property(MANAGER_PATH, f"{SYSTEMD}.Manager", "Version", deadline))
        match = _VERSION.search(full)
        if match:
            self._version = Sample("node_systemd_version", (("version", full),), float(match.group(0)), 0.0)
        return self._version

    def _socket(self, u: Unit, now: float, deadline: float) -> list[Sample]:
        out = []
        labels = (("name", u.name),)
        for prop, name in SOCKET_PROPS:
            try:
                value = self.bus.get_property(u.path, f"{SYSTEMD}.Socket", prop, deadline)
            except DBusErrorResponse:
                break  # node_exporter stops at the first property a unit lacks
            out.append(Sample(name, labels, float(value), now))
        return out

    def _timer(self, u: Unit, now: float, deadline: float) -> list[Sample]:
        try:
            usec = self.bus.get_property(u.path, f"{SYSTEMD}.Timer", "LastTriggerUSec", deadline)
        except DBusErrorResponse:
            return []
        return [Sample("node_systemd_timer_last_trigger_seconds", (("name", u.name),), usec / 1e6, now)]

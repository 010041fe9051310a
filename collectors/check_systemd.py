"""`systemd` check: unit states over D-Bus (org.freedesktop.systemd1), no `systemctl` per run.

Named units (`unit:` / `units:`) are looked up with Manager.GetUnit (falling back to LoadUnit to tell
"not found" from "inactive and unloaded", as `systemctl status` does) and read with Properties.Get;
`pattern:` lists loaded units with Manager.ListUnits and keeps those whose name fully matches the
regex. NRestarts is read for services. One connection per check, reused across runs and reopened
after a failure.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.checks import CheckConfig, CheckResult, Status, register_check, remaining, sample
from jeepney import DBusAddress, DBusErrorResponse, MessageType, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection

log = logging.getLogger(__name__)

DEFAULT_BUS = "unix:path=/run/dbus/system_bus_socket"
SYSTEMD = "org.freedesktop.systemd1"
MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name=SYSTEMD, interface=f"{SYSTEMD}.Manager")
PROPS = "org.freedesktop.DBus.Properties"
UNIT_IF = f"{SYSTEMD}.Unit"
SERVICE_IF = f"{SYSTEMD}.Service"
STATES = ("active", "activating", "deactivating", "inactive", "failed")  # node_exporter's five


@dataclass(frozen=True)
class SystemdConfig(CheckConfig):
    unit: str | None = None
    units: list[str] = field(default_factory=list)
    pattern: Regex | None = None  # full match against unit names, e.g. 'nginx@.+\.service'
    ok_states: list[str] = field(default_factory=lambda: ["active", "reloading"])
    min_units: int = 1  # with `pattern:`: fewer matching loaded units is a failure
    bus_address: str | None = None  # default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket

    def validate(self) -> list[str]:
        problems = super().validate()
        given = sum(1 for x in (self.unit, self.units, self.pattern) if x)
        if given != 1:
            problems.append("exactly one of unit, units or pattern is required")
        if self.min_units < 0:
            problems.append("min_units must not be negative")
        return problems

    def unit_names(self) -> list[str]:
        return [self.unit] if self.unit else list(self.units)


@dataclass(frozen=True)
class UnitInfo:
    name: str
    load_state: str
    active_state: str
    sub_state: str
    restarts: int | None = None  # services only

    @property
    def type(self) -> str:
        return self.name.rpartition(".")[2] if "." in self.name else ""


class SystemdBus:
    """A reusable D-Bus connection to systemd; every call has a deadline."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: DBusConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _connection(self, deadline: float) -> DBusConnection:
        if self._conn is None:
            self._conn = open_dbus_connection(self.address, auth_timeout=max(0.05, remaining(deadline)))
        return self._conn

    def call(self, addr: DBusAddress, method: str, signature: str | None, body: tuple, deadline: float) -> Any:
        conn = self._connection(deadline)
        timeout = remaining(deadline)
        if timeout <= 0:
            raise TimeoutError("deadline passed")
        try:
            reply = conn.send_and_get_reply(new_method_call(addr, method, signature, body), timeout=timeout)
        except (OSError, ConnectionError, EOFError):
            self.close()  # the bus went away or the socket is in an unknown state: reconnect next time
            raise
        if reply.header.message_type == MessageType.error:
            raise DBusErrorResponse(reply)
        return reply.body

    def get_property(self, path: str, interface: str, prop: str, deadline: float) -> Any:
        obj = DBusAddress(path, bus_name=SYSTEMD, interface=PROPS)
        (variant,) = self.call(obj, "Get", "ss", (interface, prop), deadline)
        return variant[1]

    # -- systemd ----------------------------------------------------------------------------------
    def unit_path(self, name: str, deadline: float) -> str:
        try:
            return self.call(MANAGER, "GetUnit", "s", (name,), deadline)[0]
        except DBusErrorResponse as e:
            if e.name != f"{SYSTEMD}.NoSuchUnit":
                raise
        return self.call(MANAGER, "LoadUnit", "s", (name,), deadline)[0]

    def unit(self, name: str, deadline: float) -> UnitInfo:
        path = self.unit_path(name, deadline)
        load, active, sub = (self.get_property(path, UNIT_IF, p, deadline)
                             for p in ("LoadState", "ActiveState", "SubState"))
        restarts = self.restarts(path, deadline) if name.endswith(".service") and load == "loaded" else None
        return UnitInfo(name, load, active, sub, restarts)

    def restarts(self, path: str, deadline: float) -> int | None:
        try:
            return int(self.get_property(path, SERVICE_IF, "NRestarts", deadline))
        except DBusErrorResponse:
            return None  # systemd < 235 has no NRestarts

    def list_units(self, pattern: re.Pattern[str], deadline: float) -> list[UnitInfo]:
        (rows,) = self.call(MANAGER, "ListUnits", None, (), deadline)
        out = []
        for row in rows:
            name, _desc, load, active, sub, _following, path = row[:7]
            if not pattern.fullmatch(name):
                continue
            restarts = self.restarts(path, deadline) if name.endswith(".service") else None
            out.append(UnitInfo(name, load, active, sub, restarts))
        return sorted(out, key=lambda u: u.name)


def describe_error(e: BaseException) -> str:
    if isinstance(e, DBusErrorResponse):
        detail = e.data[0] if e.data and isinstance(e.data[0], str) else ""
        if e.name == "org.freedesktop.DBus.Error.ServiceUnknown":
            return "systemd is not running on this bus (org.freedesktop.systemd1 has no owner)"
        return f"D-Bus error {e.name}" + (f": {detail}" if detail else "")
    if isinstance(e, FileNotFoundError | ConnectionRefusedError):
        return f"system bus not available: {e.strerror or e}"
    if isinstance(e, TimeoutError):
        return "D-Bus call timed out"
    return f"{type(e).__name__}: {e}"


@register_check("systemd")
class SystemdCheck:
    Config = SystemdConfig
    metrics = metric_defs(
        MetricDef("node_systemd_unit_state", "gauge", "Unit state: 1 for the current of the five states.",
                  ("check", "name", "state", "type")),
        MetricDef("hostwarden_systemd_unit_restarts_total", "counter",
                  "Automatic restarts of the service (NRestarts).", ("check", "name")),
        MetricDef("hostwarden_systemd_units_failed", "gauge", "Matched units in the failed state.", ("check",)),
    )

    def __init__(self, config: SystemdConfig) -> None:
        self.config = config
        address = config.bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_BUS
        self.bus = SystemdBus(address)
        self._pattern = re.compile(config.pattern) if config.pattern else None

    def close(self) -> None:
        self.bus.close()

    def run(self, deadline: float) -> CheckResult:
        try:
            if self._pattern is not None:
                units = self.bus.list_units(self._pattern, deadline)
            else:
                units = [self.bus.unit(n, deadline) for n in self.config.unit_names()]
        except Exception as e:
            if not isinstance(e, DBusErrorResponse):
                self.bus.close()
            return CheckResult.failed(describe_error(e), status=Status.UNKNOWN)
        return evaluate(units, self.config)


def evaluate(units: list[UnitInfo], config: SystemdConfig) -> CheckResult:
    """Pure: unit states → samples and a verdict."""
    samples: list[Sample] = []
    bad: list[str] = []
    failed = 0
    for u in units:
        for state in STATES:
            samples.append(sample("node_systemd_unit_state", 1.0 if u.active_state == state else 0.0,
                                  name=u.name, state=state, type=u.type))
        if u.restarts is not None:
            samples.append(sample("hostwarden_systemd_unit_restarts_total", u.restarts, name=u.name))
        failed += u.active_state == "failed"
        if u.load_state == "not-found":
            bad.append(f"{u.name} not found")
        elif u.active_state not in config.ok_states:
            bad.append(f"{u.name} {u.active_state} ({u.sub_state})")
    samples.append(sample("hostwarden_systemd_units_failed", failed))
    if config.pattern is not None and len(units) < config.min_units:
        return CheckResult.failed(f"{len(units)} loaded unit(s) match {config.pattern!r}, expected at least "
                                  f"{config.min_units}", samples=samples)
    if bad:
        return CheckResult.failed("; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else ""),
                                  samples=samples)
    if len(units) == 1:
        msg = f"{units[0].name} {units[0].active_state} ({units[0].sub_state})"
    else:
        msg = f"{len(units)} units OK"
    return CheckResult(ok=True, message=msg, samples=samples)

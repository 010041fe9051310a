"""A real `dbus-daemon` started for a test, and a jeepney-based stand-in for systemd on it.

`DbusDaemon` runs `dbus-daemon --nofork --print-address` with a private config (a unix socket in a
temporary directory, everyone may own any name). `FakeSystemd` connects to it, owns the name
org.freedesktop.systemd1 and answers the calls the `systemd` check and collector make, in the wire
format systemd uses: Manager.GetUnit / LoadUnit / ListUnits, and org.freedesktop.DBus.Properties.Get /
GetAll on the Unit, Service, Mount, Socket and Timer interfaces (Get also for the Manager's SystemState and Version).
Tests change `units` (and `system_state`) while it runs; `hang = True` makes it stop
answering (to exercise call timeouts); `senders` records the unique bus name of every caller.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

from jeepney import HeaderFields, Message, MessageType, new_error, new_method_call, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class DbusDaemon:
    """A private message bus; `address` is its D-Bus address (unix:path=...)."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("dbus-daemon")
        if binary is None:
            raise FileNotFoundError("dbus-daemon not installed (Debian package: dbus)")
        self.socket = os.path.join(directory, "bus")
        config = os.path.join(directory, "bus.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_CONFIG.format(socket=self.socket))
        self.proc = subprocess.Popen([binary, f"--config-file={config}", "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # printed once the bus listens
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.wait(5)
            raise RuntimeError(f"dbus-daemon did not start: {err.strip()}")
        self.address = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@dataclass
class FakeUnit:
    name: str
    active_state: str = "active"
    sub_state: str = "running"
    load_state: str = "loaded"
    restarts: int = 0
    loaded: bool = True  # False: not in memory (GetUnit says NoSuchUnit, LoadUnit loads it)
    service_type: str = "simple"  # Service.Type (or Mount.Type for .mount units)
    accepted: int = 0  # .socket: NAccepted, NConnections, NRefused
    connections: int = 0
    refused: int = 0
    last_trigger_usec: int = 0  # .timer: LastTriggerUSec

    @property
    def path(self) -> str:
        return f"{MANAGER_PATH}/unit/{escape_path(self.name)}"


def escape_path(name: str) -> str:
    """systemd's object path escaping: [A-Za-z0-9] kept, everything else as _xx."""
    return "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)


class FakeSystemd:
    """Answers systemd1 Manager/Unit/Service calls on a bus until stop()."""

    def __init__(self, address: str, units: list[FakeUnit] | None = None) -> None:
        self.units: dict[str, FakeUnit] = {u.name: u for u in units or []}
        self.hang = False
        self.system_state = "running"  # Manager.SystemState
        self.senders: list[str] = []
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: DBusConnection = open_dbus_connection(address)
        reply = self._conn.send_and_get_reply(message_bus.RequestName(SYSTEMD), timeout=5)
        if reply.body[0] != 1:  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
            raise RuntimeError(f"could not own {SYSTEMD}: {reply.body}")
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-systemd")
        self._thread.start()

    def set(self, name: str, **changes: object) -> None:
        with self._lock:
            unit = self.units.setdefault(name, FakeUnit(name))
            for k, v in changes.items():
                setattr(unit, k, v)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()

    # -- serving --------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            except (OSError, EOFError):
                return
            if msg.header.message_type != MessageType.method_call or self.hang:
                continue
            with self._lock:
                reply = self._answer(msg)
            self._conn.send(reply)

    def _answer(self, msg: Message) -> Message:
        fields = msg.header.fields
        iface, member, path = fields.get(HeaderFields.interface), fields[HeaderFields.member], fields[HeaderFields.path]
        self.senders.append(fields.get(HeaderFields.sender, ""))
        self.calls.append(member)
        by_path = {u.path: u for u in self.units.values()}
        if iface == f"{SYSTEMD}.Manager" and path == MANAGER_PATH:
            if member == "GetUnit":
                unit = self.units.get(msg.body[0])
                if unit is None or not unit.loaded:
                    return new_error(msg, f"{SYSTEMD}.NoSuchUnit", "s", (f"Unit {msg.body[0]} not loaded.",))
                return new_method_return(msg, "o", (unit.path,))
            if member == "LoadUnit":
                name = msg.body[0]
                unit = self.units.get(name)
                if unit is None:  # what systemd does for a unit without a unit file
                    unit = FakeUnit(name, "inactive", "dead", "not-found")
                    self.units[name] = unit
                unit.loaded = True
                return new_method_return(msg, "o", (unit.path,))
            if member == "ListUnits":
                rows = [(u.name, f"fake {u.name}", u.load_state, u.active_state, u.sub_state, "", u.path, 0, "", "/")
                        for u in self.units.values() if u.loaded]
                return new_method_return(msg, "a(ssssssouso)", (rows,))
        if iface == "org.freedesktop.DBus.Properties" and path == MANAGER_PATH and member == "Get":
            manager = {"SystemState": ("s", self.system_state), "Version": ("s", "252.19-1~deb12u1")}
            if msg.body[0] == f"{SYSTEMD}.Manager" and msg.body[1] in manager:
                return new_method_return(msg, "v", (manager[msg.body[1]],))
        if iface == "org.freedesktop.DBus.Properties" and path in by_path:
            unit = by_path[path]
            props = self._props(unit)
            if member == "Get":
                interface, prop = msg.body
                if prop in props.get(interface, {}):
                    return new_method_return(msg, "v", (props[interface][prop],))
                return new_error(msg, "org.freedesktop.DBus.Error.UnknownProperty", "s",
                                 (f"Unknown property {interface}.{prop}",))
            if member == "GetAll":
                return new_method_return(msg, "a{sv}", (props.get(msg.body[0], {}),))
        return new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"Unknown method {member}",))

    @staticmethod
    def _props(unit: FakeUnit) -> dict[str, dict[str, tuple[str, object]]]:
        props = {f"{SYSTEMD}.Unit": {"Id": ("s", unit.name), "LoadState": ("s", unit.load_state),
                                     "ActiveState": ("s", unit.active_state), "SubState": ("s", unit.sub_state)}}
        if unit.name.endswith(".service") and unit.load_state == "loaded":
            props[f"{SYSTEMD}.Service"] = {"NRestarts": ("u", unit.restarts), "Type": ("s", unit.service_type)}
        if unit.name.endswith(".socket") and unit.load_state == "loaded":
            props[f"{SYSTEMD}.Socket"] = {"NAccepted": ("u", unit.accepted), "NConnections": ("u", unit.connections),
                                          "NRefused": ("u", unit.refused)}
        if unit.name.endswith(".timer") and unit.load_state == "loaded":
            props[f"{SYSTEMD}.Timer"] = {"LastTriggerUSec": ("t", unit.last_trigger_usec)}
        if unit.name.endswith(".mount") and unit.load_state == "loaded":
            props[f"{SYSTEMD}.Mount"] = {"Type": ("s", unit.service_type)}
        return props


def ping(address: str) -> None:
    """Raise unless a bus answers at `address` (used to wait for readiness in tests)."""
    conn = open_dbus_connection(address)
    try:
        conn.send_and_get_reply(new_method_call(message_bus, "GetId"), timeout=2)
    finally:
        conn.close()

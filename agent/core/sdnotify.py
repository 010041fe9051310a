"""systemd's sd_notify protocol, spoken directly: one datagram per message to `$NOTIFY_SOCKET`.

`Type=notify` units learn from these messages that the daemon is ready (READY=1), what it is doing
(STATUS=...), that it is alive (WATCHDOG=1, see `WatchdogSec=`), reloading (RELOADING=1 with
MONOTONIC_USEC, as systemd ≥ 253 wants) or stopping (STOPPING=1). Outside systemd there is no
socket and every call is a no-op. A failing send never raises into the caller: it is logged once
when sending starts failing and once when it works again.

The socket is a filesystem path or, starting with `@`, a name in the abstract namespace
(sd_notify(3)).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

# Variables the service manager passes to the main process only: children (check commands, Nagios
# plugins) must not inherit them, or they could send notifications in the agent's name.
NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(path: str) -> str | bytes:
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def watchdog_interval(environ: dict[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of `$WATCHDOG_USEC`, or None when no watchdog is set
    for this process ($WATCHDOG_PID names another process, or the values are not numbers)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid and (not wpid.isdigit() or int(wpid) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 1_000_000 / 2


class Notifier:
    """sd_notify sender. `socket_path=None` reads `$NOTIFY_SOCKET` now; `""` disables it."""

    def __init__(self, socket_path: str | None = None, *, environ: dict[str, str] | None = None,
                 unset_environment: bool = False) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self._watchdog_interval = watchdog_interval(env)
        if unset_environment and environ is None:
            for name in NOTIFY_ENV:
                os.environ.pop(name, None)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failing = False
        self.sent = 0  # datagrams delivered (self-observability, tests)

    @property
    def enabled(self) -> bool:
        return bool(self.socket_path)

    def watchdog_interval(self) -> float | None:
        """Half the watchdog timeout systemd gave this process (seconds), or None without a watchdog."""
        return self._watchdog_interval

    # -- messages ---------------------------------------------------------------------------------
    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *((f"STATUS={_one_line(status)}",) if status else ()))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *((f"STATUS={_one_line(status)}",) if status else ()))

    def reloading(self, monotonic_usec: int | None = None) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC time of the request; send ready() when done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000 if monotonic_usec is None else monotonic_usec
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    # -- transport --------------------------------------------------------------------------------
    def notify(self, *fields: str) -> bool:
        """Send `fields` (KEY=VALUE, joined by newlines) as one datagram; True when it was sent."""
        if not self.socket_path:
            return False
        payload = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(payload, _address(self.socket_path))
            except (OSError, ValueError) as e:
                if not self._failing:
                    log.warning("sd_notify to %s failed: %s (further failures are not logged)",
                                self.socket_path, e)
                    self._failing = True
                self._close_locked()
                return False
            if self._failing:
                log.info("sd_notify to %s works again", self.socket_path)
                self._failing = False
            self.sent += 1
            return True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())

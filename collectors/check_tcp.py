"""`tcp` check: connect to host:port within the timeout; up and the connect latency."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, metric_defs
from hostwarden.collectors.checks import CheckConfig, CheckResult, register_check, remaining, sample


def split_host_port(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port); ValueError with a readable message otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {address!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {address!r}: put an IPv6 address in brackets, e.g. [::1]:22")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r}: port must be 1-65535")
    return host, int(port)


@dataclass(frozen=True)
class TcpConfig(CheckConfig):
    address: str = ""

    def validate(self) -> list[str]:
        problems = super().validate()
        try:
            split_host_port(self.address)
        except ValueError as e:
            problems.append(str(e))
        return problems


def connect(host: str, port: int, deadline: float) -> float:
    """Connect (trying each resolved address in turn) and close; return the seconds the connect took."""
    budget = remaining(deadline)
    if budget <= 0:
        raise TimeoutError("no time left")
    t0 = time.monotonic()
    sock = socket.create_connection((host, port), timeout=budget)
    elapsed = time.monotonic() - t0
    sock.close()
    return elapsed


@register_check("tcp")
class TcpCheck:
    Config = TcpConfig
    metrics = metric_defs(
        MetricDef("hostwarden_tcp_connect_seconds", "gauge", "Time the last successful TCP connect took.",
                  ("check",)),
    )

    def __init__(self, config: TcpConfig) -> None:
        self.config = config
        self.host, self.port = split_host_port(config.address)

    def run(self, deadline: float) -> CheckResult:
        try:
            elapsed = connect(self.host, self.port, deadline)
        except TimeoutError:
            return CheckResult.failed(f"connect to {self.config.address}: timed out after "
                                      f"{float(self.config.timeout):g}s")
        except socket.gaierror as e:
            return CheckResult.failed(f"cannot resolve {self.host}: {e.strerror}")
        except OSError as e:
            return CheckResult.failed(f"connect to {self.config.address}: {e.strerror or e}")
        return CheckResult(ok=True, message=f"connected to {self.config.address} in {elapsed * 1000:.1f}ms",
                           samples=[sample("hostwarden_tcp_connect_seconds", elapsed)])

"""Start Debian's real prometheus-node-exporter on 127.0.0.1 (its defaults otherwise) and parse expositions."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.agent import free_port

Labels = tuple[tuple[str, str], ...]


def node_exporter_binary() -> str:
    path = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not path:
        pytest.skip("Debian package 'prometheus-node-exporter' is not installed (test.sh installs it as root)")
    return path


@dataclass
class NodeExporter:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, timeout: float = 10) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=timeout) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_node_exporter(workdir: Path, *extra_args: str) -> NodeExporter:
    """node_exporter with its default collectors and flags, listening on a free 127.0.0.1 port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(workdir / "node_exporter.log", "ab")  # noqa: SIM115 - child's lifetime
    proc = subprocess.Popen([node_exporter_binary(), f"--web.listen-address=127.0.0.1:{port}", *extra_args],
                            stdout=log, stderr=subprocess.STDOUT)
    ne = NodeExporter(proc, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "node_exporter.log").read_text())
        try:
            ne.scrape(timeout=2)
            return ne
        except OSError:
            time.sleep(0.1)
    ne.stop()
    raise RuntimeError("node_exporter did not answer in 30s")


@dataclass(frozen=True)
class Family:
    name: str  # as the parser names it: a counter without its _total
    type: str  # counter, gauge, unknown (untyped), …
    series: dict[tuple[str, Labels], float]  # (sample name, labels without empty values) -> value

    @property
    def label_names(self) -> frozenset[str]:
        return frozenset(k for _, labels in self.series for k, _ in labels)


def families(text: str, prefix: str = "node_") -> dict[str, Family]:
    """The exposition's families whose name starts with `prefix`. Empty label values are dropped: Prometheus
    stores `duplex=""` as no label, which is how hostwarden exposes it."""
    out: dict[str, Family] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith(prefix):
            continue
        series = {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v != ""))): float(s.value)
                  for s in fam.samples}
        out[fam.name] = Family(fam.name, fam.type, series)
    return out

"""Start Debian's real Prometheus on 127.0.0.1 for tests and query its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.agent import free_port


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        pytest.skip("Debian package 'prometheus' is not installed (test.sh installs it as root)")
    return path


def promtool_binary() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool (Debian package 'prometheus') is not installed (test.sh installs it as root)")
    return path


@dataclass
class Prometheus:
    proc: subprocess.Popen
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=10) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        assert data["status"] == "success", data
        return data["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_prometheus(workdir: Path, scrape_config_yaml: str, *, rule_files: list[str] | None = None,
                     evaluation_interval: str = "1s", extra_args: list[str] | None = None) -> Prometheus:
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rules = "".join(f"  - {r}\n" for r in (rule_files or [])) or "  []\n"
    cfg = workdir / "prometheus.yml"
    cfg.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: {evaluation_interval}\n"
                   f"rule_files:\n{rules}scrape_configs:\n{scrape_config_yaml}")
    log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - child's lifetime
    proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                             *(extra_args or [])], stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(proc, port, workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "prometheus.log").read_text())
        try:
            urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1).read()
            return prom
        except OSError:
            time.sleep(0.2)
    prom.stop()
    raise RuntimeError("prometheus did not become ready in 60s")

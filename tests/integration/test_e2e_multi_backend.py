"""A route to several backends, end to end: a real `hostwarden run` sends one incident to the local store and to a
real Redmine (one ticket each, each with its own outbox queue and dedup), and `hostwarden incidents` shows both
tickets with their ids, URLs and delivery state. A second route's Redmine is down (nothing listens on its port):
the local ticket is delivered at once while that backend retries, and when the port answers (a TCP relay to the
real Redmine) the waiting operations are delivered in order."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from tests.integration.servers.redmine import RedmineServer
from tests.support.agent import free_port, run_cli, start_agent, wait_for, write_config

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: Both
        expr: e2e_both
        warning: "> 10"
        for: 1s
      - alert: Partial
        expr: e2e_partial
        warning: "> 10"
        for: 1s
"""
FIRE = 10.0


class Relay:
    """A TCP relay 127.0.0.1:port → target, started late: the backend behind `port` is down until then."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.sock: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.sock is not None
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.target, timeout=30)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopped.set()
        if self.sock is not None:
            self.sock.close()


def set_values(tmp_path: Path, **values: float) -> None:
    d = tmp_path / "state" / "textfile"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".e2e.prom.tmp"
    tmp.write_text("".join(f"# TYPE e2e_{k} gauge\ne2e_{k} {v}\n" for k, v in values.items()))
    os.replace(tmp, d / "e2e.prom")


def incidents(cfg: Path) -> dict[str, dict]:
    res = run_cli("incidents", "list", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return {i["rule"]: i for i in json.loads(res.stdout)}


def tickets_of(cfg: Path, rule: str) -> dict[str, dict]:
    inc = incidents(cfg).get(rule)
    return {t["backend"]: t for t in inc["tickets"]} if inc else {}


def redmine_issues(server: RedmineServer, fingerprint: str) -> list[dict]:
    r = server.api("GET", "/issues.json", params={"project_id": server.project, "status_id": "*",
                                                   f"cf_{server.cf_id}": fingerprint})
    assert r.status_code == 200, r.text
    return r.json()["issues"]


def test_e2e_route_to_local_and_redmine_one_backend_down(redmine_server: RedmineServer, tmp_path: Path) -> None:
    server = redmine_server
    down_port = free_port()
    host, port = server.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    (tmp_path / "rules.yaml").write_text(RULES)
    redmine = (f"type: redmine, project: {server.project}, api_key_env: HW_TEST_REDMINE_KEY, "
               f"fingerprint_field: {server.cf_name}, timeout: 10")
    cfg = write_config(tmp_path, f"""rule_files: [rules.yaml]
tickets:
  backends:
    - {{name: local, type: local}}
    - {{name: ops-redmine, url: "{server.url}", {redmine}}}
    - {{name: dr-redmine, url: "http://127.0.0.1:{down_port}", {redmine}}}
  route:
    - {{match: {{alertname: Both}}, backends: [local, ops-redmine]}}
    - {{match: {{alertname: Partial}}, backends: [local, dr-redmine]}}
""")
    set_values(tmp_path, both=0, partial=0)
    agent = start_agent(cfg, env={"HW_TEST_REDMINE_KEY": server.user_key})
    relay = Relay(down_port, (host, int(port)))
    try:
        set_values(tmp_path, both=50, partial=50)
        both = wait_for(lambda: (t := tickets_of(cfg, "Both")) and all(x["delivery"] == "delivered"
                                                                        for x in t.values()) and t,
                        FIRE + 30, what="Both delivered to local and Redmine")
        assert set(both) == {"local", "ops-redmine"} and both["local"]["primary"]
        rid = both["ops-redmine"]["id"]
        assert both["ops-redmine"]["url"] == f"{server.url.rstrip('/')}/issues/{rid}"
        fp = incidents(cfg)["Both"]["fingerprint"]
        (issue,) = redmine_issues(server, fp)
        assert str(issue["id"]) == rid

        partial = wait_for(lambda: (t := tickets_of(cfg, "Partial")) and t["local"]["delivery"] == "delivered"
                           and t["dr-redmine"]["last_error"] and t, FIRE + 10,
                           what="Partial: local delivered, dr-redmine failing")
        assert partial["dr-redmine"]["delivery"] == "pending" and partial["dr-redmine"]["id"] is None
        assert partial["local"]["id"] is not None
        shown = run_cli("incidents", "show", str(incidents(cfg)["Partial"]["id"]), "--config", str(cfg))
        assert shown.returncode == 0 and "[pending] after" in shown.stdout and "[delivered]" in shown.stdout

        set_values(tmp_path, both=50, partial=0)  # Partial resolves while its Redmine is down: queued behind open
        wait_for(lambda: incidents(cfg)["Partial"]["status"] == "resolved", FIRE, what="Partial resolved")
        relay.start()  # the backend comes back
        done = wait_for(lambda: (t := tickets_of(cfg, "Partial")) and t["dr-redmine"]["delivery"] == "delivered"
                        and t, 90, what="the waiting operations delivered after the backend came back")
        fp2 = incidents(cfg)["Partial"]["fingerprint"]
        (issue2,) = redmine_issues(server, fp2)
        assert str(issue2["id"]) == done["dr-redmine"]["id"]
        assert issue2["status"]["is_closed"] or issue2["status"]["name"] in ("Resolved", "Closed")
        assert len(redmine_issues(server, fp)) == 1  # Both: still one issue (dedup per backend)
        outbox = json.loads(run_cli("tickets", "outbox", "--format", "json", "--config", str(cfg)).stdout)
        assert outbox == []
    finally:
        relay.stop()
        assert agent.stop() == 0, agent.log_text()

"""Against Debian's real Alertmanager on 127.0.0.1: the `alertmanager` backend pushing alerts, and an
Alertmanager whose route points at a real `hostwarden receive` process (one local ticket per group)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hostwarden.agent.core.incident import PermanentError, TransientError
from hostwarden.exporters.tickets.alertmanager import AlertmanagerBackend, AlertmanagerConfig, rfc3339

from tests.contract.incidents import make_incident, resolved, with_ref
from tests.support.agent import ROOT, free_port, hostwarden_cmd, run_cli, terminate
from tests.support.alertmanager import Alertmanager, start_alertmanager

pytestmark = pytest.mark.integration
T = TypeVar("T")

PLAIN_CONFIG = """route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


def wait_for(fn: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    server = start_alertmanager(tmp_path_factory.mktemp("am"), PLAIN_CONFIG)
    yield server
    server.stop()


def backend(*urls: str, **kw: Any) -> AlertmanagerBackend:
    cfg = dict(name="am", type="alertmanager", urls=list(urls), resend_interval=5.0, timeout=5.0) | kw
    return AlertmanagerBackend(AlertmanagerConfig(**cfg))


def test_alertmanager_backend_pushed_alert_is_visible_with_labels_and_annotations(am: Alertmanager) -> None:
    b = backend(am.url, extra_labels={"source": "hostwarden"}, generator_url="http://{host}:9842/")
    now = time.time()
    inc = make_incident(opened_at=now - 30, alert=dataclasses.replace(make_incident().alert, fired_at=now - 30))
    ref = b.open(inc)
    assert (ref.backend, ref.id) == ("am", inc.fingerprint)
    got = am.alerts(alertname=inc.alert.rule, instance=dict(inc.labels)["instance"])
    assert len(got) == 1
    alert = got[0]
    assert alert["labels"] == {"alertname": "FilesystemAlmostFull", "severity": "critical", "host": "web1",
                               "instance": dict(inc.labels)["instance"], "mountpoint": "/srv", "source": "hostwarden"}
    assert alert["annotations"]["summary"] == "/srv is 97% full"
    assert alert["annotations"]["hostwarden_fingerprint"] == inc.fingerprint
    assert alert["annotations"]["priority"] == "P2" and alert["annotations"]["value"] == "0.97 (threshold > 0.95)"
    assert alert["generatorURL"] == "http://web1:9842/"
    assert alert["status"]["state"] == "active"
    lease = alert["endsAt"]
    assert rfc3339(now + 15) < lease <= rfc3339(time.time() + 21)  # now + 4 x resend_interval

    b.resolve(ref, resolved(inc, at=time.time()))
    assert am.alerts(alertname=inc.alert.rule, instance=dict(inc.labels)["instance"]) == []


def test_alertmanager_backend_resend_extends_the_lease_of_firing_incidents_only(am: Alertmanager) -> None:
    b = backend(am.url)
    inc = make_incident()
    ref = b.open(inc)
    other = make_incident()  # firing, but not this backend's
    instance = dict(inc.labels)["instance"]
    first = am.alerts(instance=instance)[0]["endsAt"]
    later = time.time() + 3
    b.resend(later, [with_ref(inc, ref), other])
    assert b.wait_resend(10)
    assert am.alerts(instance=instance)[0]["endsAt"] > first
    assert am.alerts(instance=dict(other.labels)["instance"]) == []
    third = am.alerts(instance=instance)[0]["endsAt"]
    b.resend(later + 1, [with_ref(inc, ref)])  # within resend_interval: throttled, nothing sent
    assert b.wait_resend(10)
    assert am.alerts(instance=instance)[0]["endsAt"] == third


def test_alertmanager_backend_escalation_ends_the_old_label_set(am: Alertmanager) -> None:
    b = backend(am.url)
    inc = make_incident(severity="warning")
    ref = b.open(inc)
    instance = dict(inc.labels)["instance"]
    hot = dataclasses.replace(inc, alert=dataclasses.replace(inc.alert, severity="critical"))
    b.update(ref, hot, "escalated")
    got = am.alerts(instance=instance)
    assert [a["labels"]["severity"] for a in got] == ["critical"]


def test_alertmanager_backend_cluster_member_down_is_tolerated_all_down_is_transient(am: Alertmanager) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    inc = make_incident()
    backend(dead, am.url).open(inc)
    assert len(am.alerts(instance=dict(inc.labels)["instance"])) == 1
    with pytest.raises(TransientError, match="connection"):
        backend(dead).open(make_incident())


def test_alertmanager_backend_rejected_alert_is_permanent(am: Alertmanager) -> None:
    b = backend(am.url, generator_url="http://[not-a-url")
    with pytest.raises(PermanentError, match=r"HTTP (400|422)"):
        b.open(make_incident())


# -- receiver mode: Alertmanager → hostwarden receive → local tickets --------------------------------------------
TOKEN = "receiver-token-5c1e"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Alertmanager, Path]]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    port = free_port()
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\n  hostname: receiver1\n"
                   f"tickets:\n  backends: [{{name: ops, type: local}}]\n  update_interval: 0s\n"
                   f"receiver:\n  listen_address: 127.0.0.1:{port}\n  token_file: {token}\n")
    log = open(tmp_path / "receiver.log", "wb")  # noqa: SIM115 - the child's lifetime
    proc = subprocess.Popen([*hostwarden_cmd(), "receive", "--config", str(cfg)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    wait_for(lambda: proc.poll() is not None or healthy(port), 30, "hostwarden receive listening")
    assert proc.poll() is None, (tmp_path / "receiver.log").read_text()
    am_cfg = (f"route:\n  receiver: hostwarden\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n"
              f"  repeat_interval: 1h\nreceivers:\n  - name: hostwarden\n    webhook_configs:\n"
              f"      - url: http://127.0.0.1:{port}/alerts\n        send_resolved: true\n"
              f"        http_config:\n          authorization:\n            type: Bearer\n"
              f"            credentials_file: {token}\n")
    am = start_alertmanager(tmp_path / "am", am_cfg)
    try:
        yield am, cfg
    finally:
        am.stop()
        rc = terminate(proc, 20)
        log.close()
        assert rc == 0, (tmp_path / "receiver.log").read_text()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def tickets(cfg: Path) -> list[dict[str, Any]]:
    res = run_cli("tickets", "list", "--config", str(cfg), "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def show(cfg: Path, ticket_id: int) -> dict[str, Any]:
    res = run_cli("tickets", "show", str(ticket_id), "--config", str(cfg), "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def am_alert(name: str, instance: str, severity: str, *, ends: float | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {"labels": {"alertname": name, "instance": instance, "severity": severity, "job": "node"},
                             "annotations": {"summary": f"{name} on {instance}"},
                             "startsAt": rfc3339(time.time() - 5)}
    if ends is not None:
        alert["endsAt"] = rfc3339(ends)
    return alert


def test_receiver_one_ticket_per_alertmanager_group_updated_and_resolved(receiver: tuple[Alertmanager, Path]) -> None:
    am, cfg = receiver
    am.post_alerts([am_alert("DiskFull", "a:9100", "warning"), am_alert("DiskFull", "b:9100", "warning")])
    first = wait_for(lambda: tickets(cfg), 30, "the group's ticket")
    assert len(first) == 1
    t = first[0]
    assert t["status"] == "new" and t["severity"] == "warning" and t["rule"] == "DiskFull"
    assert t["labels"]["am_receiver"] == "hostwarden" and t["labels"]["am_group_key"].endswith('{alertname="DiskFull"}')

    # a critical member joins the group: the same ticket is updated (escalated), no second ticket
    am.post_alerts([am_alert("DiskFull", "c:9100", "critical")])
    wait_for(lambda: any(e["text"].startswith("Escalated warning → critical") for e in show(cfg, t["id"])["events"]),
             30, "the escalation noted on the ticket")
    assert show(cfg, t["id"])["severity"] == "critical"
    # another alertname is another group: its own ticket
    am.post_alerts([am_alert("LoadHigh", "a:9100", "warning")])
    both = wait_for(lambda: (lambda ts: ts if len(ts) == 2 else None)(tickets(cfg)), 30, "the second group's ticket")
    assert {x["rule"] for x in both} == {"DiskFull", "LoadHigh"}

    # every DiskFull member resolves: its ticket resolves; LoadHigh stays open
    now = time.time()
    am.post_alerts([am_alert("DiskFull", i, s, ends=now) for i, s in
                    (("a:9100", "warning"), ("b:9100", "warning"), ("c:9100", "critical"))])
    wait_for(lambda: show(cfg, t["id"])["status"] == "resolved", 30, "the DiskFull ticket resolved")
    final = {x["rule"]: x for x in tickets(cfg)}
    assert len(final) == 2
    assert final["DiskFull"]["status"] == "resolved" and final["DiskFull"]["priority"] == show(cfg, t["id"])["priority"]
    assert final["LoadHigh"]["status"] == "new"
    kinds = [e["kind"] for e in show(cfg, t["id"])["events"]]
    assert kinds.count("opened") == 1 and "resolved" in kinds


@pytest.mark.parametrize(("body", "env", "message"), [
    ("", {}, "no `receiver:` section"),
    ("receiver:\n  token_env: HW_TEST_RECEIVER_TOKEN_UNSET\n", {}, "HW_TEST_RECEIVER_TOKEN_UNSET is not set"),
    ("receiver:\n  listen_adress: x\n", {}, "did you mean 'listen_address'"),
])
def test_receive_command_refuses_bad_config_with_exit_2(tmp_path: Path, body: str, env: dict[str, str],
                                                       message: str) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\n{body}")
    res = run_cli("receive", "--config", str(cfg), env=env, timeout=30)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stdout + res.stderr

"""DNS failure of a configured backend's host under a real `hostwarden run`, on loopback only.

The agent runs in its own mount namespace (`unshare --mount`, private propagation) where three files are
bind-mounted over the system's: `/etc/resolv.conf` names a single nameserver on a random 127.x.y.z:53 —
a small DNS server in this test —, `/etc/hosts` holds only localhost and `/etc/nsswitch.conf` says
`hosts: files dns`. So the agent resolves through the real glibc resolver and the real DNS protocol, and
no packet can leave loopback: the only nameserver it knows is the test's. (Patching `socket.getaddrinfo`
in-process would skip glibc, the resolver's timeouts and the error mapping of requests/urllib3.)

Two webhook backends, each with a host name under `.invalid` (RFC 6761) and its own receiver on
127.0.0.1, fail in the two ways DNS fails in practice:

- `nx.hostwarden.invalid`: the nameserver answers NXDOMAIN (`Name or service not known`);
- `mute.hostwarden.invalid`: the nameserver never answers (resolver timeout, `Temporary failure in name
  resolution`; `options timeout:1 attempts:1`).

Per backend two incidents fire during the failure and one of them resolves, so each outbox queue holds
`open` + `resolve` and `open`. Asserted while DNS fails: the operations are transient (pending, never
dead), the self-metrics show the failures and the waiting operations, attempts over a fixed window stay
within what the backoff allows (counted by the agent's own counters and by the queries the nameserver
saw), the agent does not burn CPU. Then the nameserver answers A 127.0.0.1 for both names: every
operation arrives exactly once (one request per idempotency key, none before), in order per incident,
with the configured name in the Host header. A second test puts the same two failures through
exporters/tickets/http.py's HttpClient (the other HTTP backends): TransientError naming the resolver's reason.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import select
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.agentprobe import cpu_seconds, named, parse_exposition, record
from tests.support.agent import ROOT, free_port, start_agent, wait_for
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

NAMES = {"nx": "nx.hostwarden.invalid", "mute": "mute.hostwarden.invalid"}
WINDOW_SECONDS = 10.0
QTYPE_A, QTYPE_AAAA = 1, 28
RCODE_NXDOMAIN = 3
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# -- a DNS server for two names, on 127.x.y.z:53 ----------------------------------------------------------------------

@dataclass
class Query:
    at: float  # time.monotonic()
    name: str
    qtype: int
    answered: str  # "nxdomain", "none", "a", "nodata"


def _parse_question(data: bytes) -> tuple[str, int, int] | None:
    """(lower-case name, qtype, offset after the question) of a standard query; None when malformed."""
    if len(data) < 12 or struct.unpack(">H", data[4:6])[0] != 1:
        return None
    labels, i = [], 12
    while i < len(data):
        n = data[i]
        if n == 0:
            break
        if n & 0xC0:  # no compression in questions
            return None
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    if i + 5 > len(data):
        return None
    qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5


class StubDNS:
    """Answers queries for `names`: while `healed` is False NXDOMAIN for `nx` names and nothing at all for
    `mute` names; once healed, A 127.0.0.1 (and an empty AAAA answer). Any other name: NXDOMAIN."""

    def __init__(self, names: dict[str, str]) -> None:
        self.behaviour = {name: kind for kind, name in names.items()}
        self.healed = False
        self.queries: list[Query] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random()
        for _ in range(50):
            self.address = f"127.{rnd.randint(1, 254)}.{rnd.randint(1, 254)}.{rnd.randint(1, 254)}"
            try:
                self.sock.bind((self.address, 53))
                break
            except OSError:
                continue
        else:
            raise OSError("no free 127.x.y.z:53 for the test nameserver")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def count(self, name: str, qtype: int = QTYPE_A, since: float = 0.0, until: float = float("inf")) -> int:
        with self.lock:
            return sum(1 for q in self.queries if q.name == name and q.qtype == qtype and since <= q.at < until)

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            parsed = _parse_question(data)
            if parsed is None:
                continue
            name, qtype, end = parsed
            kind = self.behaviour.get(name)
            if kind is None:
                answer, reply = "nxdomain", self._reply(data, end, RCODE_NXDOMAIN)
            elif self.healed:
                if qtype == QTYPE_A:
                    rr = b"\xc0\x0c" + struct.pack(">HHIH", QTYPE_A, 1, 0, 4) + socket.inet_aton("127.0.0.1")
                    answer, reply = "a", self._reply(data, end, 0, rr)
                else:
                    answer, reply = "nodata", self._reply(data, end, 0)
            elif kind == "nx":
                answer, reply = "nxdomain", self._reply(data, end, RCODE_NXDOMAIN)
            else:
                answer, reply = "none", None
            with self.lock:
                self.queries.append(Query(time.monotonic(), name, qtype, answer))
            if reply is not None:
                self.sock.sendto(reply, peer)

    @staticmethod
    def _reply(query: bytes, end: int, rcode: int, answer: bytes = b"") -> bytes:
        qflags = struct.unpack(">H", query[2:4])[0]
        flags = 0x8000 | (qflags & 0x7800) | 0x0400 | (qflags & 0x0100) | 0x0080 | rcode  # QR, opcode, AA, RD, RA
        header = query[:2] + struct.pack(">HHHHH", flags, 1, 1 if answer else 0, 0, 0)
        return header + query[12:end] + answer


# -- the agent in a mount namespace with that resolver ----------------------------------------------------------------

def _namespace_files(d: Path, nameserver: str) -> tuple[Path, Path, Path]:
    resolv, hosts, nss = d / "resolv.conf", d / "hosts", d / "nsswitch.conf"
    resolv.write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    system = Path("/etc/nsswitch.conf").read_text() if Path("/etc/nsswitch.conf").exists() else ""
    lines = [ln for ln in system.splitlines() if not ln.strip().startswith("hosts:")]
    nss.write_text("\n".join([*lines, "hosts: files dns"]) + "\n")
    return resolv, hosts, nss


def _wrapper(resolv: Path, hosts: Path, nss: Path) -> list[str]:
    script = ('mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && '
              'mount --bind "$3" /etc/nsswitch.conf && shift 3 && exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            str(resolv), str(hosts), str(nss)]


def _namespaces_usable() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare(1)/mount(8) not installed (util-linux)"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                            "mount --bind /etc/hostname /etc/hostname"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot bind-mount in a private mount namespace here: {probe.stderr.strip()}"
    return None


def _stub_dns_or_skip() -> StubDNS:
    reason = _namespaces_usable()
    if reason:
        pytest.skip(reason)
    try:
        return StubDNS(NAMES)
    except OSError as e:
        pytest.skip(f"cannot serve DNS on a loopback address, port 53 (needs root): {e}")


def _by_backend(series: dict, name: str, **match: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, v in named(series, name).items():
        lab = dict(labels)
        if all(lab.get(k) == want for k, want in match.items()):
            out[lab["backend"]] += v
    return dict(out)


def max_attempts_in(window: float) -> int:
    """Most attempts agent.outbox's backoff allows within `window` seconds of the first failure: after the
    k-th failure of a backend it pauses at least half of min(300, 2^(k-1)) seconds."""
    n, t = 1, 0.0
    while True:
        t += min(300.0, 2.0 ** (n - 1)) / 2
        if t > window:
            return n
        n += 1


def test_faults_dns_name_not_resolving_outbox_holds_backoff_then_each_operation_once_in_order(
        tmp_path: Path) -> None:
    dns = _stub_dns_or_skip()
    receivers = {kind: CountingReceiver().up() for kind in NAMES}
    textfile = tmp_path / "textfile"
    textfile.mkdir()

    def trigger(values: dict[tuple[str, int], int]) -> None:
        tmp = textfile / "dns.prom.tmp"
        tmp.write_text("".join(f'dns_trigger{{fault="{k}",n="{n}"}} {v}\n' for (k, n), v in sorted(values.items())))
        tmp.rename(textfile / "dns.prom")

    values = {(k, n): 0 for k in NAMES for n in (1, 2)}
    trigger(values)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: dns\n    interval: 1s\n    rules:\n"
        "      - alert: DnsFaultTest\n        expr: dns_trigger > 0\n"
        "        labels: {severity: critical}\n"
        "        annotations: {summary: 'dns fault {{ $labels.fault }} #{{ $labels.n }}'}\n")
    backends = "".join(f"    - {{name: hook{k}, type: webhook, url: 'http://{NAMES[k]}:{r.port}/hook', timeout: 5s}}\n"
                       for k, r in receivers.items())
    routes = "".join(f"    - {{match: {{fault: '{k}'}}, backend: hook{k}}}\n" for k in NAMES)
    port = free_port()
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 1s\n  state_dir: {tmp_path / 'state'}\n  hostname: testhost\n"
                   f"web:\n  listen_address: 127.0.0.1:{port}\n"
                   f"collectors:\n  textfile: {{directory: {textfile}}}\nrule_files: [rules.yaml]\n"
                   f"tickets:\n  backends:\n{backends}  route:\n{routes}")
    # exec'd by the wrapper (same pid: SIGTERM reaches it); proxies dropped: it must resolve the name itself
    agent = start_agent(cfg, prefix=_wrapper(*_namespace_files(tmp_path, dns.address)),
                        drop_env=frozenset(PROXY_VARS))
    started = time.monotonic()
    try:
        values.update({(k, n): 1 for k in NAMES for n in (1, 2)})
        trigger(values)

        def series() -> dict:
            return parse_exposition(agent.scrape())

        wait_for(lambda: all(dns.count(NAMES[k]) >= 1 for k in NAMES), 30, what="a lookup of each backend's host")
        with dns.lock:
            first_query = {k: min(q.at for q in dns.queries if q.name == NAMES[k]) for k in NAMES}
        wait_for(lambda: all(v >= 1 for v in _by_backend(series(), "hostwarden_ticket_errors_total").values())
                 and len(_by_backend(series(), "hostwarden_ticket_errors_total")) == 2, 30,
                 what="a failed attempt on both backends")
        values.update({(k, 1): 0 for k in NAMES})  # incident #1 resolves while DNS still fails
        trigger(values)
        wait_for(lambda: _by_backend(series(), "hostwarden_outbox_pending") == {"hooknx": 3.0, "hookmute": 3.0}, 15,
                 what="open, open, resolve queued per backend")

        # a fixed window of failing: attempts counted by the agent and by the nameserver, CPU by /proc
        errors_before = _by_backend(series(), "hostwarden_ticket_errors_total")
        cpu0, w0 = cpu_seconds(agent.proc.pid), time.monotonic()
        time.sleep(WINDOW_SECONDS)
        w1 = time.monotonic()
        cores = (cpu_seconds(agent.proc.pid) - cpu0) / (w1 - w0)
        failing = series()
        errors_after = _by_backend(failing, "hostwarden_ticket_errors_total")
        attempts_window = {k: errors_after[f"hook{k}"] - errors_before[f"hook{k}"] for k in NAMES}
        queries_window = {k: dns.count(NAMES[k], since=w0, until=w1) for k in NAMES}
        # every attempt since the first failure, and what the window alone allows
        attempts_total = {k: errors_after[f"hook{k}"] for k in NAMES}
        failing_for = {k: w1 - first_query[k] for k in NAMES}
        pending = _by_backend(failing, "hostwarden_outbox_pending")
        dead = _by_backend(failing, "hostwarden_outbox_dead")
        oldest = _by_backend(failing, "hostwarden_outbox_oldest_age_seconds")
        transient = _by_backend(failing, "hostwarden_ticket_operations_total", result="transient")
        with sqlite3.connect(f"file:{tmp_path / 'state' / 'state.db'}?mode=ro", uri=True) as c:
            rows = c.execute("SELECT backend, fingerprint, op, status, attempts, last_error FROM outbox "
                             "ORDER BY id").fetchall()
        requests_before_heal = {k: len(r.requests) for k, r in receivers.items()}
        with dns.lock:
            mute_lookups = [q.at for q in dns.queries if q.name == NAMES["mute"] and q.qtype == QTYPE_A]
        gaps = [b - a for a, b in itertools.pairwise(mute_lookups)]

        dns.healed = True
        healed_at = time.monotonic()
        # the next attempt comes at the end of the current backoff step (at most 16 s after ~15 s of failures)
        wait_for(lambda: all(len(r.distinct()) >= 3 for r in receivers.values()), 60, interval=0.5,
                 what="every operation delivered once the names resolve")
        delivered_after = time.monotonic() - healed_at
        time.sleep(2.0)  # a straggling repeat would show up here
        after = series()
        log_text = agent.log_text()
    finally:
        code = agent.stop()
        for r in receivers.values():
            r.close()
        dns.close()

    per_fp: dict[str, dict[str, list[str]]] = {k: defaultdict(list) for k in NAMES}
    for k, r in receivers.items():
        for req in r.distinct():
            per_fp[k][req.fingerprint].append(req.op)
    repeats = {k: len(r.accepted()) - len(r.distinct()) for k, r in receivers.items()}
    warnings = {k: sum(1 for ln in log_text.splitlines() if f"tickets backend hook{k}: open failed" in ln)
                for k in NAMES}
    record("outbox_dns_failure", window_seconds=WINDOW_SECONDS, attempts_in_window=attempts_window,
           a_queries_in_window=queries_window, attempts_total=attempts_total,
           failing_seconds={k: round(v, 1) for k, v in failing_for.items()},
           max_attempts_allowed={k: max_attempts_in(v) for k, v in failing_for.items()}, waiting_cores=round(cores, 4),
           pending=pending, oldest_age_seconds=oldest, delivered_seconds_after_heal=round(delivered_after, 1),
           distinct_operations={k: sum(len(v) for v in per_fp[k].values()) for k in NAMES}, repeats=repeats,
           failure_warnings_logged=warnings, mute_lookup_gaps_seconds=[round(g, 2) for g in gaps],
           run_seconds=round(time.monotonic() - started, 1))

    assert code == 0, log_text[-3000:]
    # transient: queued, attempted, never dead-lettered; the self-metrics say so
    assert pending == {"hooknx": 3.0, "hookmute": 3.0}, pending
    assert dead == {"hooknx": 0.0, "hookmute": 0.0}, dead
    assert all(oldest[f"hook{k}"] >= WINDOW_SECONDS for k in NAMES), oldest
    assert all(transient.get(f"hook{k}", 0) >= 1 for k in NAMES), transient
    assert {r[3] for r in rows} == {"pending"} and len(rows) == 6, rows
    errors = {r[0]: r[5] for r in rows if r[4] > 0}
    assert "Name or service not known" in errors["hooknx"] and NAMES["nx"] in errors["hooknx"], errors
    assert "Temporary failure in name resolution" in errors["hookmute"], errors
    # no busy loop: attempts within what the backoff allows, each one a real lookup, and no CPU burnt
    assert all(attempts_total[k] <= max_attempts_in(failing_for[k]) for k in NAMES), (attempts_total, failing_for)
    assert all(1 <= attempts_window[k] <= max_attempts_in(WINDOW_SECONDS) for k in NAMES), attempts_window
    assert all(dns.count(NAMES[k], until=healed_at) >= attempts_total[k] for k in NAMES)
    assert cores < 0.25, cores
    # the backoff step starts when a failed attempt ends: a lookup that times out (1 s) is not followed at once
    # by the next one (after the k-th failure at least half of 2^(k-1) s passes)
    assert gaps and all(g >= 1.0 + min(300.0, 2.0 ** k) / 2 - 0.05 for k, g in enumerate(gaps)), gaps
    # the failure is logged when it starts (and when its text changes), not on every attempt
    assert all(1 <= warnings[k] <= 2 for k in NAMES), warnings
    # nothing reached a receiver while the names did not resolve; afterwards each operation once, in order
    assert requests_before_heal == {"nx": 0, "mute": 0}
    for k, r in receivers.items():
        assert repeats[k] == 0, [(q.key, q.op) for q in r.accepted()]
        assert sorted(per_fp[k].values()) == [["open"], ["open", "resolve"]], dict(per_fp[k])
        assert {q.headers.get("Host") for q in r.accepted()} == {f"{NAMES[k]}:{r.port}"}
    assert _by_backend(after, "hostwarden_outbox_pending") == {"hooknx": 0.0, "hookmute": 0.0}
    assert "delivering again after" in log_text


HTTP_CLIENT_PROBE = """
import json, sys
from hostwarden.exporters.tickets.base import TransientError
from hostwarden.exporters.tickets.http import HttpClient
client = HttpClient(sys.argv[1], timeout=5)
for line in sys.stdin:
    try:
        client.request("POST", "/hook", json_body={"operation": "update", "probe": line.strip()})
        print(json.dumps({"ok": True}), flush=True)
    except Exception as e:
        print(json.dumps({"ok": False, "type": type(e).__name__, "message": str(e)}), flush=True)
"""


def test_faults_dns_http_client_backends_name_not_resolving_transient_then_delivered(tmp_path: Path) -> None:
    """The same failures through exporters/tickets/http.py's HttpClient (redmine, jira, servicenow, zammad,
    github, rt …), in a process in the same kind of mount namespace: transient with the resolver's reason."""
    dns = _stub_dns_or_skip()
    receiver = CountingReceiver().up()
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env["PYTHONPATH"] = str(ROOT)
    wrapper = _wrapper(*_namespace_files(tmp_path, dns.address))
    answers: dict[str, list[dict]] = {}
    try:
        for kind, name in NAMES.items():
            dns.healed = False
            proc = subprocess.Popen([*wrapper, sys.executable, "-c", HTTP_CLIENT_PROBE, f"http://{name}:{receiver.port}"],
                                    cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert proc.stdin is not None and proc.stdout is not None
            got = []
            for step in ("failing", "failing again", "healed"):
                dns.healed = step == "healed"
                proc.stdin.write(f"{kind} {step}\n")
                proc.stdin.flush()
                got.append(json.loads(proc.stdout.readline()))
            proc.stdin.close()
            assert proc.wait(30) == 0
            answers[kind] = got
    finally:
        receiver.close()
        dns.close()
    reasons = {"nx": "Name or service not known", "mute": "Temporary failure in name resolution"}
    for kind, got in answers.items():
        assert [a["ok"] for a in got] == [False, False, True], got
        assert {a["type"] for a in got[:2]} == {"TransientError"}, got
        assert all("connection failed" in a["message"] and reasons[kind] in a["message"] for a in got[:2]), got
    probes = [r.body.get("probe") for r in receiver.accepted()]
    assert probes == ["nx healed", "mute healed"], probes

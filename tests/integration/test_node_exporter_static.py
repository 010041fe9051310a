"""A real `hostwarden run` next to the real Debian prometheus-node-exporter (defaults): the static values of
the parity collectors agree exactly, and the agent exposes node_scrape_collector_* for its collectors.
And node_exporter run over the fixture tree tests/fixtures/nodeparity (--path.procfs/sysfs/rootfs) gives
exactly the series — names, labels, values, types, help — the parity collectors give over it.

Small on purpose: uname and os series byte-equal, and for the families of the parity collectors that
node_exporter exposes here, the same type and label names. The full family parity and dashboard
queries are tests/integration/test_node_exporter_parity.py's (other work)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostwarden.collectors import base
from hostwarden.exporters.prometheus import Exposition
from prometheus_client.parser import text_string_to_metric_families

from tests.support.agent import AgentProcess, free_port, start_agent, wait_for, write_config

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
pytestmark = pytest.mark.skipif(NODE_EXPORTER is None,
                                reason="needs node_exporter (Debian package: prometheus-node-exporter)")

PARITY = ("arp", "conntrack", "entropy", "filefd", "netclass", "netstat", "os", "pressure", "sockstat", "softnet",
          "stat", "time", "timex", "udp_queues", "uname", "vmstat")
# family prefixes those collectors own in node_exporter's output (netdev's node_network_*_total are not theirs)
PREFIXES = ("node_arp_", "node_nf_conntrack_", "node_entropy_", "node_filefd_", "node_netstat_", "node_os_",
            "node_pressure_", "node_sockstat_", "node_softnet_", "node_context_switches", "node_forks",
            "node_intr", "node_procs_", "node_time_", "node_timex_", "node_udp_queues", "node_uname_",
            "node_vmstat_")
NETCLASS = ("node_network_up", "node_network_info", "node_network_mtu_bytes", "node_network_speed_bytes",
            "node_network_carrier", "node_network_flags", "node_network_iface_id", "node_network_protocol_type",
            "node_network_transmit_queue_length", "node_network_carrier_changes")


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nodeparity"
# over a fixture tree: everything but the system calls (uname, timex) and the process' time zone
FIXTURE_COLLECTORS = ("arp", "conntrack", "entropy", "filefd", "netclass", "netstat", "os", "pressure", "sockstat",
                      "softnet", "stat", "time", "udp_queues", "vmstat")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    port = free_port()
    assert NODE_EXPORTER is not None
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _up(url), timeout=20, what="node_exporter listening")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _up(url: str, needle: str = "node_uname_info") -> bool:
    try:
        return needle in scrape(url)
    except OSError:
        return False


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    d: Path = tmp_path_factory.mktemp("agent")
    proc = start_agent(write_config(d, "rule_files: []\n"))
    try:
        wait_for(lambda: 'node_scrape_collector_success{collector="uname"}' in proc.scrape(), timeout=20,
                 what="first collection")
        yield proc
    finally:
        proc.stop()


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    return {f.name: (f.type, frozenset(k for s in f.samples for k in s.labels))
            for f in text_string_to_metric_families(text)}


# series whose values do not change while the test runs (on any host)
STATIC = ("node_uname_info", "node_os_info", "node_os_version", "node_time_zone_offset_seconds",
          "node_time_clocksource_available_info", "node_time_clocksource_current_info", "node_timex_tick_seconds",
          "node_timex_tai_offset_seconds", "node_entropy_pool_size_bits", "node_filefd_maximum",
          "node_nf_conntrack_entries_limit", "node_network_mtu_bytes", "node_network_info",
          "node_network_protocol_type", "node_network_iface_id", "node_network_address_assign_type")


def test_uname_os_and_other_static_series_equal_node_exporters(node_exporter: str, agent: AgentProcess) -> None:
    ne, ours = scrape(node_exporter), agent.scrape()
    for name in STATIC:
        assert series(ours, name) == series(ne, name), name
    assert len(series(ours, "node_uname_info")) == 1


def test_parity_families_same_type_and_label_names_as_node_exporter(node_exporter: str, agent: AgentProcess) -> None:
    ne, ours = families(scrape(node_exporter)), families(agent.scrape())
    wanted = {n for n in ne if n.startswith(PREFIXES) or n in NETCLASS}
    assert len(wanted) > 50  # uname, os, stat, netstat, sockstat, timex, … are all there on any Linux
    missing = sorted(n for n in wanted if n not in ours)
    assert missing == []
    differ = {n: (ours[n], ne[n]) for n in wanted if ours[n] != ne[n]}
    assert differ == {}


def test_agent_exposes_node_scrape_collector_metrics_for_its_collectors(agent: AgentProcess) -> None:
    text = agent.scrape()
    ok = series(text, "node_scrape_collector_success")
    took = series(text, "node_scrape_collector_duration_seconds")
    for name in PARITY:
        assert ok[(("collector", name),)] == 1.0, name
        assert 0.0 < took[(("collector", name),)] < 1.0, name
    assert len(series(text, "node_time_seconds")) == 1  # time and uptime both report it: one series
    assert time.time() - series(text, "node_time_seconds")[()] < 60


def test_node_exporter_over_the_fixture_tree_gives_the_same_series_as_the_collectors() -> None:
    assert NODE_EXPORTER is not None
    port = free_port()
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                             f"--path.procfs={FIXTURE / 'proc'}", f"--path.sysfs={FIXTURE / 'sys'}",
                             f"--path.rootfs={FIXTURE}", "--collector.disable-defaults",
                             *(f"--collector.{c}" for c in FIXTURE_COLLECTORS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _up(url, "node_scrape_collector_success"), timeout=20, what="node_exporter listening")
        theirs_text = scrape(url)
    finally:
        proc.terminate()
        proc.wait(10)
    reg = base.registry()
    exp = Exposition(process_metrics=False)
    now = time.time()
    for name in (*FIXTURE_COLLECTORS, "uptime"):  # node_boot_time_seconds: node_exporter's stat, our uptime
        cls = reg[name]
        kw = ({"sys_root": str(FIXTURE / "sys")} if name in ("netclass", "time") else
              {"root": str(FIXTURE)} if name == "os" else {"proc_root": str(FIXTURE / "proc")})
        col = cls(**kw)
        exp.update(name, col.collect(now), col.metrics)
    ours, theirs = full_series(exp.render().text.decode()), full_series(theirs_text)
    success = {k: v for k, v in theirs.items() if k[0] == "node_scrape_collector_success"}
    assert set(success.values()) == {(1.0, "gauge", "node_exporter: Whether a collector succeeded.")}
    assert len(success) == len(FIXTURE_COLLECTORS)
    theirs = {k: v for k, v in theirs.items() if not k[0].startswith(NOT_COMPARED)}
    ours = {k: v for k, v in ours.items() if not k[0].startswith(NOT_COMPARED)}
    assert len(theirs) > 150
    assert ours == theirs


NOT_COMPARED = ("node_scrape_", "node_time_seconds", "node_time_zone_offset_seconds", "go_", "process_",
                "promhttp_", "node_exporter_")


def full_series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str, str]]:
    return {(s.name, tuple(sorted(s.labels.items()))): (s.value, f.type, f.documentation)
            for f in text_string_to_metric_families(text) for s in f.samples}

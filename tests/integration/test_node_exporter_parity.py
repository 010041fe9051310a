"""Parity with the real node_exporter (Debian's prometheus-node-exporter 1.5, its defaults) on this host.

For every node_* family node_exporter exposes here, hostwarden (default collectors) exposes the family
with the same type and the same label names, except the reasoned EXCEPTIONS below; and the values that
do not move while the test runs agree: uname, os-release, MemTotal, filesystem sizes, boot time, the cpu
set and the other static facts both read from the kernel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostwarden.collectors import base

from tests.support.agent import AgentProcess, start_agent, wait_for, write_config
from tests.support.node_exporter import Family, NodeExporter, families, start_node_exporter

pytestmark = pytest.mark.integration

# node_* families node_exporter has and hostwarden deliberately does not, each with its reason.
EXCEPTIONS: dict[str, str] = {
    "node_exporter_build_info": "describes the node_exporter binary (its version and Go runtime); hostwarden "
                                "describes itself in hostwarden_build_info",
}
# the same, for sources this test host may not have (so their presence in node_exporter is not checked)
SOURCE_EXCEPTIONS: dict[str, str] = {
    "node_btrfs_device_errors": "node_exporter asks each mounted btrfs for device error counters through the "
                                "BTRFS_IOC_GET_DEV_STATS ioctl, which needs CAP_SYS_ADMIN; hostwarden reads sysfs only",
    "node_btrfs_device_unused_bytes": "from the same root-only ioctl (BTRFS_IOC_DEV_INFO)",
}

# gauges whose value is a fact of the machine, not a measurement: equal in both, series by series
STATIC = ("node_uname_info", "node_os_info", "node_os_version", "node_memory_MemTotal_bytes",
          "node_memory_SwapTotal_bytes", "node_boot_time_seconds", "node_filefd_maximum",
          "node_entropy_pool_size_bits", "node_nf_conntrack_entries_limit", "node_network_mtu_bytes",
          "node_time_zone_offset_seconds", "node_timex_tick_seconds", "node_selinux_enabled",
          "node_network_iface_id", "node_network_address_assign_type", "node_network_protocol_type")


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeExporter, AgentProcess]]:
    d = tmp_path_factory.mktemp("parity")
    ne = start_node_exporter(d / "ne")
    agent = start_agent(write_config(d, "rule_files: []\n"))
    try:
        wait_for(lambda: collectors_reported(agent) >= len(base.DEFAULT_ENABLED), 30, what="every collector ran")
        yield ne, agent
    finally:
        ne.stop()
        assert agent.stop() == 0, agent.log_text()


def collectors_reported(agent: AgentProcess) -> int:
    return agent.scrape().count("\nhostwarden_collector_success{")


def scrape_pair(ne: NodeExporter, agent: AgentProcess) -> tuple[dict[str, Family], dict[str, Family]]:
    return families(ne.scrape()), families(agent.scrape())


def test_every_node_exporter_family_has_same_type_and_label_names(both) -> None:  # type: ignore[no-untyped-def]
    theirs, ours = scrape_pair(*both)
    assert len(theirs) > 150, sorted(theirs)  # node_exporter's defaults on this host: about 250 families
    missing, different = [], []
    for name, fam in sorted(theirs.items()):
        if name in EXCEPTIONS or name in SOURCE_EXCEPTIONS:
            continue
        mine = ours.get(name)
        if mine is None:
            missing.append(f"{name} ({fam.type}, labels {sorted(fam.label_names)})")
        elif (mine.type, mine.label_names) != (fam.type, fam.label_names):
            different.append(f"{name}: node_exporter {fam.type} {sorted(fam.label_names)}, "
                             f"hostwarden {mine.type} {sorted(mine.label_names)}")
    assert missing == [] and different == [], "\n".join(["missing:", *missing, "different:", *different])


def test_exceptions_are_still_exceptions(both) -> None:  # type: ignore[no-untyped-def]
    theirs, ours = scrape_pair(*both)
    for name in EXCEPTIONS:
        assert name in theirs, f"{name} is no longer exposed by node_exporter: drop the exception"
        assert name not in ours, f"{name} is exposed by hostwarden now: drop the exception"


def test_static_values_agree(both) -> None:  # type: ignore[no-untyped-def]
    theirs, ours = scrape_pair(*both)
    for name in ("node_uname_info", "node_os_info", "node_memory_MemTotal_bytes", "node_boot_time_seconds"):
        assert name in theirs, name
    checked = 0
    for name in STATIC:
        if name not in theirs:
            continue  # a source this host does not have (e.g. no conntrack module): nothing to compare
        assert ours[name].series == theirs[name].series, name
        checked += 1
    assert checked >= 8


def test_filesystem_sizes_and_cpu_set_agree(both) -> None:  # type: ignore[no-untyped-def]
    ne, agent = both
    for _ in range(5):  # a mount appearing between the two scrapes is not a disagreement: look again
        theirs, ours = scrape_pair(ne, agent)
        size_theirs = theirs["node_filesystem_size_bytes"].series
        size_ours = ours["node_filesystem_size_bytes"].series
        if set(size_theirs) <= set(size_ours):
            break
        time.sleep(0.5)
    assert set(size_theirs) <= set(size_ours), set(size_theirs) - set(size_ours)
    assert any(("mountpoint", "/") in labels for _, labels in size_theirs)
    for key, value in size_theirs.items():
        assert size_ours[key] == value, key
    for name in ("node_filesystem_files", "node_filesystem_readonly"):
        for key, value in theirs[name].series.items():
            assert ours[name].series.get(key) == value, (name, key)
    cpus = {dict(labels)["cpu"] for _, labels in theirs["node_cpu_seconds"].series}
    assert cpus == {dict(labels)["cpu"] for _, labels in ours["node_cpu_seconds"].series}
    modes = {labels for _, labels in theirs["node_cpu_seconds"].series}
    assert modes == {labels for _, labels in ours["node_cpu_seconds"].series}


def test_parity_harness_sees_differences(tmp_path: Path) -> None:
    """The comparison itself: a family with another type or another label is reported, not waved through."""
    a = families("# TYPE node_x gauge\nnode_x{a=\"1\",b=\"\"} 1\n# TYPE node_y counter\nnode_y_total 2\n")
    b = families("# TYPE node_x gauge\nnode_x{a=\"1\",c=\"2\"} 1\n# TYPE node_y gauge\nnode_y 2\n")
    assert a["node_x"].label_names == {"a"} and b["node_x"].label_names == {"a", "c"}
    assert a["node_y"].type == "counter" and b["node_y"].type == "gauge"

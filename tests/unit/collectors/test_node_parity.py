"""Semantics of the node_exporter-parity collectors beyond the goldens: options, sharing, caching, edge cases."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors, Regex
from hostwarden.collectors import base
from hostwarden.collectors.arp import ArpCollector, ArpConfig
from hostwarden.collectors.cpu import CpuCollector
from hostwarden.collectors.netclass import NetclassCollector, NetclassConfig
from hostwarden.collectors.netstat import NetstatCollector, NetstatConfig
from hostwarden.collectors.os_release import OsCollector, parse_os_release
from hostwarden.collectors.stat import StatCollector
from hostwarden.collectors.timex import STA_NANO, TIME_ERROR, Timex, TimexCollector
from hostwarden.collectors.uptime import UptimeCollector
from hostwarden.collectors.vmstat import VmstatCollector, VmstatConfig

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "nodeparity"
PROC, SYS = str(FIXTURE / "proc"), str(FIXTURE / "sys")
MINE = ("arp", "conntrack", "entropy", "filefd", "netclass", "netstat", "os", "pressure", "sockstat", "softnet",
        "stat", "systemd", "time", "timex", "udp_queues", "uname", "vmstat")


def by_name(samples: object) -> dict[str, float]:
    return {s.name: s.value for s in samples}  # type: ignore[attr-defined]


def test_proc_stat_read_once_per_cycle_shared_by_cpu_stat_and_uptime(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "proc" / "stat", tmp_path / "stat")
    stat, cpu, uptime = (StatCollector(proc_root=str(tmp_path)), CpuCollector(proc_root=str(tmp_path), clock_ticks=100),
                         UptimeCollector(proc_root=str(tmp_path)))
    assert by_name(stat.collect(10.0))["node_context_switches_total"] == 1990473
    text = (tmp_path / "stat").read_text().replace("ctxt 1990473", "ctxt 2000000").replace("btime 1795514684",
                                                                                           "btime 1795514000")
    (tmp_path / "stat").write_text(text)
    # same cycle: cpu and uptime parse the text stat already read, not the file again
    assert by_name(uptime.collect(10.0))["node_boot_time_seconds"] == 1795514684
    assert len(list(cpu.collect(10.0))) > 0
    assert by_name(stat.collect(10.0))["node_context_switches_total"] == 1990473
    # next cycle: one fresh read
    assert by_name(stat.collect(20.0))["node_context_switches_total"] == 2000000
    assert by_name(uptime.collect(20.0))["node_boot_time_seconds"] == 1795514000


def test_vmstat_and_netstat_fields_options_select_counters() -> None:
    vm = by_name(VmstatCollector(VmstatConfig(fields=Regex("^nr_")), proc_root=PROC).collect(1.0))
    assert vm == {"node_vmstat_nr_free_pages": 245708, "node_vmstat_nr_zone_inactive_anon": 1024,
                  "node_vmstat_nr_dirty": 12}
    col = NetstatCollector(NetstatConfig(fields=Regex("^(Tcp_MaxConn|IcmpMsg_.*|Ip6_InReceives)$")), proc_root=PROC)
    ns = by_name(col.collect(1.0))
    assert ns == {"node_netstat_Tcp_MaxConn": -1, "node_netstat_IcmpMsg_InType3": 44,
                  "node_netstat_IcmpMsg_OutType3": 50, "node_netstat_Ip6_InReceives": 412}
    assert all(d.type == "untyped" for d in col.metrics.values())


def test_netstat_without_snmp6_reports_ipv4_counters_only(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    for f in ("netstat", "snmp"):
        shutil.copy(FIXTURE / "proc" / "net" / f, tmp_path / "net" / f)
    names = set(by_name(NetstatCollector(proc_root=str(tmp_path)).collect(1.0)))
    assert "node_netstat_Tcp_InSegs" in names and not any("6_" in n for n in names)


def test_netclass_ignored_devices_and_invalid_speed_options() -> None:
    col = NetclassCollector(NetclassConfig(ignored_devices=Regex("^(lo|veth.*)$"), ignore_invalid_speed=True),
                            sys_root=SYS)
    out = list(col.collect(1.0))
    assert {s.label("device") for s in out} == {"eth0", "wlan0"}
    speeds = {s.label("device"): s.value for s in out if s.name == "node_network_speed_bytes"}
    assert speeds == {"eth0": 125_000_000}
    assert col.metrics["node_network_carrier_changes_total"].type == "counter"
    assert col.metrics["node_network_mtu_bytes"].type == "gauge"


def test_arp_include_exclude_and_both_rejected() -> None:
    inc = {s.label("device"): s.value for s in ArpCollector(ArpConfig(device_include=Regex("1$")),
                                                           proc_root=PROC).collect(1.0)}
    exc = {s.label("device"): s.value for s in ArpCollector(ArpConfig(device_exclude=Regex("1$")),
                                                           proc_root=PROC).collect(1.0)}
    assert inc == {"eth1": 1} and exc == {"eth0": 2}
    with pytest.raises(ValueError, match="mutually exclusive"):
        ArpCollector(ArpConfig(device_include=Regex("a"), device_exclude=Regex("b")), proc_root=PROC)


def test_os_release_quoting_fallback_and_version_rules(tmp_path: Path) -> None:
    got = parse_os_release('A="x \\"y\\" \\$z"\nB=\'q "r"\'\nC=plain\n# D=comment\n\nbroken line\n')
    assert got == {"A": 'x "y" $z', "B": 'q "r"', "C": "plain"}
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    shutil.copy(FIXTURE / "usr" / "lib" / "os-release", tmp_path / "usr" / "lib" / "os-release")
    out = list(OsCollector(root=str(tmp_path)).collect(1.0))  # no /etc/os-release: the /usr/lib one
    assert [s.name for s in out] == ["node_os_info"]  # VERSION_ID=sid has no number: no node_os_version
    assert out[0].label("id") == "fallback" and out[0].label("name") == "Fallback OS"
    assert len(out[0].labels) == 12  # every label of node_exporter 1.5, empty when the file lacks it


def test_os_release_reparsed_only_when_its_mtime_changes(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    release = tmp_path / "etc" / "os-release"
    release.write_text('ID=one\nVERSION_ID="1.5"\n')
    os.utime(release, ns=(1_000_000_000, 1_000_000_000))
    col = OsCollector(root=str(tmp_path))
    assert by_name(col.collect(1.0))["node_os_version"] == 1.5
    release.write_text('ID=two\nVERSION_ID="2"\n')
    os.utime(release, ns=(1_000_000_000, 1_000_000_000))  # same mtime: the cached parse stands
    assert by_name(col.collect(2.0))["node_os_version"] == 1.5
    os.utime(release, ns=(2_000_000_000, 2_000_000_000))
    assert by_name(col.collect(3.0))["node_os_version"] == 2


def test_timex_microsecond_resolution_unsynchronised_and_forbidden() -> None:
    tx = Timex(status=0x40, offset=-1500, jitter=30, maxerror=16_000_000)  # STA_UNSYNC, no STA_NANO: µs
    v = by_name(TimexCollector(adjtimex=lambda: (TIME_ERROR, tx)).collect(1.0))
    assert v["node_timex_offset_seconds"] == -0.0015 and v["node_timex_pps_jitter_seconds"] == 0.00003
    assert v["node_timex_sync_status"] == 0 and v["node_timex_maxerror_seconds"] == 16.0
    nano = Timex(status=STA_NANO, offset=-1500)
    assert by_name(TimexCollector(adjtimex=lambda: (0, nano)).collect(1.0))["node_timex_offset_seconds"] == -1.5e-6

    def forbidden() -> tuple[int, Timex]:
        raise PermissionError(1, "Operation not permitted")

    assert list(TimexCollector(adjtimex=forbidden).collect(1.0)) == []


def test_every_parity_collector_config_loads_from_yaml_and_bad_regex_is_located(tmp_path: Path) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global: {{state_dir: {tmp_path}}}\ncollectors:\n"
                   "  netstat: {fields: '^Tcp_.*'}\n  vmstat: {enabled: false}\n"
                   "  systemd: {unit_include: 'ssh\\.service', max_units: 10, timeout: 2s}\n")
    config = load_config(str(cfg))
    assert config.collectors["netstat"].fields == "^Tcp_.*"
    assert config.collectors["vmstat"].enabled is False
    assert config.collectors["systemd"].max_units == 10 and config.collectors["systemd"].timeout == 2.0
    assert config.collectors["uname"].enabled  # not listed: on by default
    cfg.write_text(f"global: {{state_dir: {tmp_path}}}\ncollectors:\n  netclass: {{ignored_devices: '(('}}\n")
    with pytest.raises(ConfigErrors, match=r"hostwarden.yaml:3:.*invalid regular expression"):
        load_config(str(cfg))
    cfg.write_text(f"global: {{state_dir: {tmp_path}}}\ncollectors:\n  arp: {{device_include: a, device_exclude: b}}\n"
                   "  systemd: {max_units: 0}\n")
    with pytest.raises(ConfigErrors) as e:
        load_config(str(cfg))
    assert "collectors.arp: device_include and device_exclude are mutually exclusive" in str(e.value)
    assert "collectors.systemd: max_units must be at least 1" in str(e.value)


def test_shipped_config_documents_every_option_of_every_parity_collector() -> None:
    text = (ROOT / "config" / "hostwarden.yaml").read_text()
    reg = base.registry()
    for name in MINE:
        at = re.search(rf"^  #? ?{name}:", text, re.M)
        assert at is not None, f"collector {name} missing from config/hostwarden.yaml"
        nxt = re.search(r"^  #? ?[a-z_]+:", text[at.end():], re.M)
        section = text[at.start(): at.end() + (nxt.start() if nxt else len(text))]
        for f in dataclasses.fields(reg[name].Config):
            if f.name not in ("enabled", "interval"):
                assert re.search(rf"#\s+{f.name}:", section), f"{name}.{f.name} not documented"


def test_readme_metric_table_has_one_row_per_family_of_every_parity_collector() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| `?([a-z_()]+)`? \|", readme, re.M)}
    reg = base.registry()
    pattern_rows = {"vmstat": "node_vmstat_<field>", "netstat": "node_netstat_<Protocol>_<Counter>",
                    "sockstat": "node_sockstat_<PROTO>_<state>"}
    for name in MINE:
        if name in pattern_rows:
            assert rows.get(pattern_rows[name]) == name, pattern_rows[name]
            continue
        for family in reg[name].metrics:
            assert rows.get(family) == name, f"README lacks a row for {family} ({name})"
    assert rows.get("node_sockstat_sockets_used") == "sockstat"
    assert rows.get("node_scrape_collector_success") == "(agent)"


def test_shipped_config_with_every_parity_option_uncommented_is_valid(tmp_path: Path) -> None:
    """Uncommenting the documented defaults (and the systemd section) gives a config that loads, with
    exactly the documented defaults."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    text = (ROOT / "config" / "hostwarden.yaml").read_text()
    start = text.index("  uname: {}")
    end = text.index("\n## ", start)
    section = re.sub(r"^  # systemd:", "  systemd:", text[start:end], flags=re.M)
    section = re.sub(r"^  #   ([a-z_]+:)", r"    \1", section, flags=re.M)
    section = re.sub(r"^    # ([a-z_]+:)", r"    \1", section, flags=re.M)
    cfg = tmp_path / "config" / "hostwarden.yaml"
    cfg.write_text(text[:start] + section + text[end:])
    cfg.write_text(cfg.read_text().replace("global:\n", f"global:\n  state_dir: {tmp_path / 'state'}\n", 1))
    config = load_config(str(cfg))
    reg = base.registry()
    for name in MINE:
        assert config.collectors[name] == reg[name].Config(), name

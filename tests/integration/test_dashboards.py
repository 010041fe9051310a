"""The dashboards people already run, against a real Prometheus scraping a real `hostwarden run`.

DASHBOARD_FAMILIES lists, from the published queries of Grafana's "Node Exporter Full" (grafana.com id
1860) and of node_exporter's node-mixin dashboards and alerts, the metric families they read and the
label names they select, group or join on (written out here as facts, not copied from their JSON).
Prometheus scrapes hostwarden (job="hostwarden") and Debian's node_exporter 1.5 with its defaults
(job="node") side by side: every family node_exporter answers for on this host must answer for
hostwarden too, with those labels; the families every Linux host has must answer regardless. Then a
handful of the dashboards' actual queries must return data for the hostwarden job.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.agent import AgentProcess, start_agent, wait_for, write_config
from tests.support.node_exporter import NodeExporter, start_node_exporter
from tests.support.prometheus import Prometheus, start_prometheus

pytestmark = pytest.mark.integration

_DISK = ("device",)
_FS = ("device", "fstype", "mountpoint")
_NET = ("device",)
_NONE: tuple[str, ...] = ()

# family -> label names the dashboards use on it
DASHBOARD_FAMILIES: dict[str, tuple[str, ...]] = {
    # variables ($job, $nodename, $node / node-mixin's $instance) and the header row
    "node_uname_info": ("nodename", "sysname", "release", "machine"),
    "node_boot_time_seconds": _NONE, "node_time_seconds": _NONE,
    "node_os_info": ("pretty_name",),
    # CPU
    "node_cpu_seconds_total": ("cpu", "mode"), "node_cpu_guest_seconds_total": ("cpu", "mode"),
    "node_load1": _NONE, "node_load5": _NONE, "node_load15": _NONE,
    "node_cpu_scaling_frequency_hertz": ("cpu",), "node_cpu_scaling_frequency_max_hertz": ("cpu",),
    "node_cpu_scaling_frequency_min_hertz": ("cpu",),
    "node_schedstat_running_seconds_total": ("cpu",), "node_schedstat_waiting_seconds_total": ("cpu",),
    "node_schedstat_timeslices_total": ("cpu",),
    # memory (meminfo panels) and vmstat
    **{f"node_memory_{f}_bytes": _NONE for f in (
        "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree", "SwapCached", "Slab",
        "SReclaimable", "SUnreclaim", "Active", "Inactive", "Active_anon", "Inactive_anon", "Active_file",
        "Inactive_file", "AnonPages", "AnonHugePages", "Mapped", "Shmem", "ShmemHugePages", "ShmemPmdMapped",
        "Committed_AS", "CommitLimit", "Dirty", "Writeback", "WritebackTmp", "KernelStack", "PageTables",
        "Percpu", "Unevictable", "Mlocked", "NFS_Unstable", "VmallocChunk", "VmallocTotal", "VmallocUsed",
        "DirectMap4k", "DirectMap2M", "DirectMap1G", "Hugepagesize", "HardwareCorrupted", "Zswap", "Zswapped")},
    **{f"node_memory_HugePages_{f}": _NONE for f in ("Total", "Free", "Rsvd", "Surp")},
    **{f"node_vmstat_{f}": _NONE for f in ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout",
                                            "oom_kill")},
    # processes, kernel
    "node_procs_running": _NONE, "node_procs_blocked": _NONE, "node_forks_total": _NONE,
    "node_context_switches_total": _NONE, "node_intr_total": _NONE,
    "node_entropy_available_bits": _NONE, "node_entropy_pool_size_bits": _NONE,
    "node_filefd_allocated": _NONE, "node_filefd_maximum": _NONE,
    **{f"node_pressure_{f}_seconds_total": _NONE for f in ("cpu_waiting", "io_waiting", "io_stalled",
                                                           "memory_waiting", "memory_stalled")},
    # disk
    **{f"node_disk_{f}": _DISK for f in (
        "reads_completed_total", "writes_completed_total", "read_bytes_total", "written_bytes_total",
        "read_time_seconds_total", "write_time_seconds_total", "io_time_seconds_total",
        "io_time_weighted_seconds_total", "io_now", "reads_merged_total", "writes_merged_total",
        "discards_completed_total", "discards_merged_total", "discarded_sectors_total",
        "discard_time_seconds_total", "flush_requests_total", "flush_requests_time_seconds_total")},
    # filesystem
    **{f"node_filesystem_{f}": _FS for f in ("avail_bytes", "free_bytes", "size_bytes", "files", "files_free",
                                              "readonly", "device_error")},
    # network
    **{f"node_network_{d}_{f}_total": _NET for d, fs in (
        ("receive", ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast", "nohandler")),
        ("transmit", ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"))) for f in fs},
    "node_network_up": _NET, "node_network_carrier": _NET, "node_network_mtu_bytes": _NET,
    "node_network_speed_bytes": _NET, "node_arp_entries": ("device",),
    "node_nf_conntrack_entries": _NONE, "node_nf_conntrack_entries_limit": _NONE,
    "node_softnet_processed_total": ("cpu",), "node_softnet_dropped_total": ("cpu",),
    "node_softnet_times_squeezed_total": ("cpu",), "node_udp_queues": ("ip", "queue"),
    # netstat (TCP/UDP/ICMP panels) and sockstat
    **{f"node_netstat_{f}": _NONE for f in (
        "IpExt_InOctets", "IpExt_OutOctets", "Icmp_InErrors", "Icmp_InMsgs", "Icmp_OutMsgs", "Tcp_InSegs",
        "Tcp_OutSegs", "Tcp_InErrs", "Tcp_RetransSegs", "Tcp_OutRsts", "Tcp_CurrEstab", "Tcp_ActiveOpens",
        "Tcp_PassiveOpens", "TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed",
        "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans", "TcpExt_TCPTimeouts",
        "Udp_InDatagrams", "Udp_OutDatagrams", "Udp_InErrors", "Udp_NoPorts", "Udp_RcvbufErrors",
        "Udp_SndbufErrors", "UdpLite_InErrors")},
    **{f"node_sockstat_{f}": _NONE for f in (
        "sockets_used", "TCP_alloc", "TCP_inuse", "TCP_mem", "TCP_mem_bytes", "TCP_orphan", "TCP_tw", "UDP_inuse",
        "UDP_mem", "UDP_mem_bytes", "UDPLITE_inuse", "RAW_inuse", "FRAG_inuse", "FRAG_memory")},
    # time synchronisation (timex)
    **{f"node_timex_{f}": _NONE for f in (
        "sync_status", "offset_seconds", "maxerror_seconds", "estimated_error_seconds", "frequency_adjustment_ratio",
        "loop_time_constant", "tick_seconds", "tai_offset_seconds", "pps_frequency_hertz", "pps_stability_hertz",
        "pps_jitter_seconds", "pps_shift_seconds", "pps_calibration_total", "pps_error_total", "pps_jitter_total",
        "pps_stability_exceeded_total")},
    # hardware
    "node_hwmon_temp_celsius": ("chip", "sensor"), "node_hwmon_chip_names": ("chip", "chip_name"),
    "node_hwmon_temp_crit_celsius": ("chip", "sensor"), "node_hwmon_temp_max_celsius": ("chip", "sensor"),
    "node_hwmon_temp_crit_alarm_celsius": ("chip", "sensor"), "node_hwmon_fan_rpm": ("chip", "sensor"),
    "node_thermal_zone_temp": ("type", "zone"), "node_cooling_device_cur_state": ("name", "type"),
    "node_cooling_device_max_state": ("name", "type"), "node_power_supply_online": ("power_supply",),
    "node_md_disks": ("device", "state"), "node_md_disks_required": ("device",),
    # the exporter itself
    "node_scrape_collector_success": ("collector",), "node_scrape_collector_duration_seconds": ("collector",),
    "node_textfile_scrape_error": _NONE,
}

# families every Linux host has: these must answer even if node_exporter did not
ALWAYS = ("node_uname_info", "node_boot_time_seconds", "node_time_seconds", "node_cpu_seconds_total", "node_load1",
          "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_vmstat_pgmajfault",
          "node_context_switches_total", "node_filefd_allocated", "node_filesystem_avail_bytes",
          "node_network_receive_bytes_total", "node_netstat_Tcp_InSegs", "node_sockstat_sockets_used",
          "node_timex_sync_status", "node_scrape_collector_success", "node_disk_read_bytes_total")


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, AgentProcess, NodeExporter]]:
    d = tmp_path_factory.mktemp("dash")
    agent = start_agent(write_config(d, "rule_files: []\n"))
    ne = start_node_exporter(d / "ne")
    p = None
    try:
        p = start_prometheus(d / "prom", f"  - job_name: hostwarden\n    static_configs:\n"
                                         f"      - targets: ['127.0.0.1:{agent.port}']\n"
                                         f"  - job_name: node\n    static_configs:\n"
                                         f"      - targets: ['127.0.0.1:{ne.port}']\n")
        wait_for(lambda: len(p.query("up == 1")) == 2, 30, what="both targets up")
        # rates need two samples of each series; 1s scrapes: wait for a few
        wait_for(lambda: p.query('count_over_time(node_load1{job="hostwarden"}[1m]) >= 4'), 30, what="4 scrapes")
        yield p, agent, ne
    finally:
        if p is not None:
            p.stop()
        ne.stop()
        assert agent.stop() == 0, agent.log_text()


def names_with_data(p: Prometheus, job: str) -> set[str]:
    return set(p.api("label/__name__/values", **{"match[]": f'{{job="{job}"}}'})["data"])


def label_names(p: Prometheus, name: str, job: str) -> set[str]:
    return set(p.api("labels", **{"match[]": f'{name}{{job="{job}"}}'})["data"])


def test_dashboard_families_answer_for_hostwarden_where_node_exporter_answers(prom) -> None:  # type: ignore[no-untyped-def]
    p, _, _ = prom
    ours, theirs = names_with_data(p, "hostwarden"), names_with_data(p, "node")
    assert {"node_cpu_seconds_total", "node_uname_info"} <= theirs
    checked, missing, unlabelled = 0, [], []
    for name, labels in sorted(DASHBOARD_FAMILIES.items()):
        if name not in theirs and name not in ALWAYS:
            continue  # this host has no such source (no hwmon, no cpufreq...): node_exporter has no answer either
        checked += 1
        if name not in ours:
            missing.append(name)
            continue
        lacking = set(labels) - label_names(p, name, "hostwarden")
        if lacking:
            unlabelled.append(f"{name}: {sorted(lacking)}")
    assert missing == [] and unlabelled == [], f"missing {missing}, labels missing {unlabelled}"
    assert checked >= 150, checked


def query_job(p: Prometheus, expr: str, job: str = "hostwarden") -> list[dict]:
    return p.query(expr.replace("$job", job))


def test_node_uname_info_variables_select_the_hostwarden_host(prom) -> None:  # type: ignore[no-untyped-def]
    p, agent, _ = prom
    # $job: label_values(node_uname_info, job)
    jobs = p.api("label/job/values", **{"match[]": "node_uname_info"})["data"]
    assert "hostwarden" in jobs
    # $nodename: label_values(node_uname_info{job="$job"}, nodename)
    nodenames = p.api("label/nodename/values", **{"match[]": 'node_uname_info{job="hostwarden"}'})["data"]
    assert nodenames == p.api("label/nodename/values", **{"match[]": 'node_uname_info{job="node"}'})["data"] != []
    # $node: label_values(node_uname_info{job="$job", nodename="$nodename"}, instance)
    series = p.api("series", **{"match[]": f'node_uname_info{{job="hostwarden", nodename="{nodenames[0]}"}}'})["data"]
    assert [s["instance"] for s in series] == [f"127.0.0.1:{agent.port}"]
    # node-mixin's $instance: label_values(node_uname_info{job=..., sysname!="Darwin"}, instance)
    inst = p.api("label/instance/values", **{"match[]": 'node_uname_info{job="hostwarden", sysname!="Darwin"}'})
    assert inst["data"] == [f"127.0.0.1:{agent.port}"]


# (panel, query as the dashboards write it with $job / $node / $__rate_interval substituted)
QUERIES = (
    ("CPU Busy (1860)", '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle", job="$job"}[30s])))'),
    ("CPU per mode (1860)", 'sum by(instance, mode) (irate(node_cpu_seconds_total{job="$job"}[30s]))'),
    ("CPU utilisation (node-mixin)", '1 - sum without (mode) (rate(node_cpu_seconds_total{job="$job", '
                                     'mode=~"idle|iowait|steal"}[30s])) / ignoring(cpu) group_left '
                                     'count without (cpu, mode) (node_cpu_seconds_total{job="$job", mode="idle"})'),
    ("Sys Load (1860)", 'scalar(node_load1{job="$job"}) * 100 / count(count(node_cpu_seconds_total{job="$job"}) '
                        'by (cpu))'),
    ("RAM Used (1860)", '(1 - (node_memory_MemAvailable_bytes{job="$job"} / node_memory_MemTotal_bytes{job="$job"}))'
                        ' * 100'),
    ("Memory utilisation (node-mixin)", '1 - (node_memory_MemAvailable_bytes{job="$job"} / '
                                        'node_memory_MemTotal_bytes{job="$job"})'),
    ("SWAP Used (1860)", '((node_memory_SwapTotal_bytes{job="$job"} - node_memory_SwapFree_bytes{job="$job"}) / '
                         '(node_memory_SwapTotal_bytes{job="$job"} > 0)) * 100 or vector(0)'),
    ("Root FS Used (1860)", '100 - ((node_filesystem_avail_bytes{job="$job", mountpoint="/", fstype!="rootfs"} * '
                            '100) / node_filesystem_size_bytes{job="$job", mountpoint="/", fstype!="rootfs"})'),
    ("Disk IOps (1860)", 'irate(node_disk_reads_completed_total{job="$job", device=~"[a-z]*[a-z]"}[30s])'),
    ("Disk I/O time (node-mixin)", 'rate(node_disk_io_time_seconds_total{job="$job", device!=""}[30s])'),
    ("Network Traffic (1860)", 'irate(node_network_receive_bytes_total{job="$job"}[30s]) * 8'),
    ("Network errors (node-mixin alert input)", 'rate(node_network_receive_errs_total{job="$job"}[30s])'),
    ("Network drops (node-mixin rule)", 'sum without (device) (rate(node_network_receive_drop_total{job="$job", '
                                        'device!="lo"}[30s]))'),
    ("Uptime (1860)", 'node_time_seconds{job="$job"} - node_boot_time_seconds{job="$job"}'),
    ("TCP In / Out (1860)", 'irate(node_netstat_Tcp_InSegs{job="$job"}[30s])'),
    ("TCP Connections (1860)", 'node_netstat_Tcp_CurrEstab{job="$job"}'),
    ("UDP errors (1860)", 'irate(node_netstat_Udp_InErrors{job="$job"}[30s])'),
    ("Sockstat TCP (1860)", 'node_sockstat_TCP_alloc{job="$job"}'),
    ("Sockstat used (1860)", 'node_sockstat_sockets_used{job="$job"}'),
    ("Time Synchronized Drift (1860)", 'node_timex_estimated_error_seconds{job="$job"}'),
    ("Clock not synchronising (node-mixin alert input)", 'min_over_time(node_timex_sync_status{job="$job"}[1m])'),
    ("Clock skew (node-mixin alert input)", 'node_timex_offset_seconds{job="$job"}'),
    ("File descriptors (node-mixin alert)", 'node_filefd_allocated{job="$job"} * 100 / '
                                            'node_filefd_maximum{job="$job"}'),
    ("Major page faults (node-mixin rule)", 'rate(node_vmstat_pgmajfault{job="$job"}[30s])'),
    ("Context switches (1860)", 'irate(node_context_switches_total{job="$job"}[30s])'),
    ("Collector success (1860)", 'node_scrape_collector_success{job="$job"}'),
)


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_dashboard_query_returns_data_for_hostwarden(prom, panel: str, expr: str) -> None:  # type: ignore[no-untyped-def]
    p, _, _ = prom
    theirs = query_job(p, expr, "node")
    assert theirs, f"{panel}: node_exporter has no answer either; the query is wrong"
    ours = wait_for(lambda: query_job(p, expr), 5, what=panel)
    assert all(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in ours), (panel, ours)


def test_conntrack_and_pressure_queries_answer_where_the_kernel_has_them(prom) -> None:  # type: ignore[no-untyped-def]
    p, _, _ = prom
    for expr in ('node_nf_conntrack_entries{job="$job"} / node_nf_conntrack_entries_limit{job="$job"}',
                 'rate(node_pressure_cpu_waiting_seconds_total{job="$job"}[30s])'):
        if query_job(p, expr, "node"):
            assert wait_for(lambda e=expr: query_job(p, e), 10, what=expr)


def test_dashboard_list_covers_the_dashboards_rows() -> None:
    assert len(DASHBOARD_FAMILIES) > 200
    assert set(ALWAYS) <= set(DASHBOARD_FAMILIES)
    prefixes = {name.split("_")[1] for name in DASHBOARD_FAMILIES}
    assert {"cpu", "memory", "disk", "filesystem", "network", "netstat", "sockstat", "timex", "uname"} <= prefixes

from __future__ import annotations

from pathlib import Path

import psutil
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors.network import COLUMNS, NetworkCollector, NetworkConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def by_device(samples: list[Sample]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        assert s.labels[0][0] == "device" and len(s.labels) == 1
        out.setdefault(s.labels[0][1], {})[s.name] = s.value
    return out


def test_network_fixture_every_column_exact() -> None:
    devs = by_device(list(NetworkCollector(NetworkConfig(), proc_root=str(FIXTURE)).collect(1.0)))
    assert set(devs) == {"lo", "eth0", "vethab12cd"}  # loopback kept, as node_exporter
    assert devs["eth0"] == {
        "node_network_receive_bytes_total": 76987220, "node_network_receive_packets_total": 2629,
        "node_network_receive_errs_total": 1, "node_network_receive_drop_total": 2,
        "node_network_receive_fifo_total": 3, "node_network_receive_frame_total": 4,
        "node_network_receive_compressed_total": 5, "node_network_receive_multicast_total": 6,
        "node_network_transmit_bytes_total": 160925, "node_network_transmit_packets_total": 1716,
        "node_network_transmit_errs_total": 7, "node_network_transmit_drop_total": 8,
        "node_network_transmit_fifo_total": 9, "node_network_transmit_colls_total": 10,
        "node_network_transmit_carrier_total": 11, "node_network_transmit_compressed_total": 12,
    }
    assert devs["vethab12cd"]["node_network_transmit_packets_total"] == 4


def test_network_device_exclude_drops_matching_interfaces() -> None:
    col = NetworkCollector(NetworkConfig(device_exclude=r"^(veth.*|lo)$"), proc_root=str(FIXTURE))
    assert set(by_device(list(col.collect(1.0)))) == {"eth0"}


def test_network_nohandler_from_link_stats_filtered_like_the_rest() -> None:
    stats = {"eth0": tuple(range(24)), "vethab12cd": (0,) * 24}
    col = NetworkCollector(NetworkConfig(device_exclude="^veth"), proc_root=str(FIXTURE), link_stats=lambda: stats)
    got = {s.label("device"): s.value for s in col.collect(1.0) if s.name == "node_network_receive_nohandler_total"}
    assert got == {"eth0": 23.0}


def test_network_real_netlink_reports_nohandler_for_every_interface() -> None:
    samples = list(NetworkCollector().collect(1.0))
    nohandler = {s.label("device") for s in samples if s.name == "node_network_receive_nohandler_total"}
    assert nohandler == {s.label("device") for s in samples if s.name == "node_network_receive_bytes_total"}


def test_network_metric_definitions_are_counters_with_device_label() -> None:
    assert len(COLUMNS) == 16
    for name in (*COLUMNS, "node_network_receive_nohandler_total"):
        d = NetworkCollector.metrics[name]
        assert d.type == "counter" and d.labelnames == ("device",) and name.endswith("_total")


def test_network_real_proc_matches_psutil() -> None:
    ours = by_device(list(NetworkCollector().collect(1.0)))
    theirs = psutil.net_io_counters(pernic=True)  # read after ours: counters can only have grown
    assert set(ours) == set(theirs)
    for dev, c in theirs.items():
        assert ours[dev]["node_network_receive_bytes_total"] <= c.bytes_recv
        assert ours[dev]["node_network_transmit_packets_total"] <= c.packets_sent
        assert ours[dev]["node_network_receive_drop_total"] <= c.dropin

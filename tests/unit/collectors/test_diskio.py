from __future__ import annotations

import re
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors.diskio import DEFAULT_DEVICE_EXCLUDE, DiskioCollector, DiskioConfig
from hostwarden.collectors.procfs import read_text

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def by_device(samples: list[Sample]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        if s.name == "node_disk_info":
            continue
        assert len(s.labels) == 1 and s.labels[0][0] == "device"
        out.setdefault(s.labels[0][1], {})[s.name] = s.value
    return out


def test_diskio_fixture_values_converted_like_node_exporter() -> None:
    disks = by_device(list(DiskioCollector(DiskioConfig(), proc_root=str(FIXTURE)).collect(1.0)))
    vda = disks["vda"]
    assert vda == {
        "node_disk_reads_completed_total": 40339,
        "node_disk_reads_merged_total": 10833,
        "node_disk_read_bytes_total": 2610258 * 512,
        "node_disk_read_time_seconds_total": pytest.approx(8.893),
        "node_disk_writes_completed_total": 15642,
        "node_disk_writes_merged_total": 13838,
        "node_disk_written_bytes_total": 1886440 * 512,
        "node_disk_write_time_seconds_total": pytest.approx(5.430),
        "node_disk_io_now": 0,
        "node_disk_io_time_seconds_total": pytest.approx(4.664),
        "node_disk_io_time_weighted_seconds_total": pytest.approx(15.870),
        "node_disk_discards_completed_total": 5276,
        "node_disk_discards_merged_total": 69,
        "node_disk_discarded_sectors_total": 212480,
        "node_disk_discard_time_seconds_total": pytest.approx(0.696),
        "node_disk_flush_requests_total": 2340,
        "node_disk_flush_requests_time_seconds_total": pytest.approx(0.850),
    }


def test_diskio_fixture_column_count_decides_which_metrics_exist() -> None:
    disks = by_device(list(DiskioCollector(proc_root=str(FIXTURE)).collect(1.0)))
    assert len(disks["sda"]) == 11  # pre-4.18 kernel: no discard, no flush columns
    assert disks["sda"]["node_disk_io_now"] == 2
    assert len(disks["nvme0n1"]) == 15  # discards, no flush
    assert "node_disk_flush_requests_total" not in disks["nvme0n1"]
    assert len(disks["dm-0"]) == 17


def test_diskio_default_exclude_drops_partitions_ram_loop() -> None:
    disks = by_device(list(DiskioCollector(proc_root=str(FIXTURE)).collect(1.0)))
    assert set(disks) == {"vda", "sda", "nvme0n1", "dm-0"}  # not loop0, zram0, sda1, nvme0n1p1


def test_diskio_no_exclude_reports_every_device_custom_exclude_applies() -> None:
    every = by_device(list(DiskioCollector(DiskioConfig(device_exclude=None), proc_root=str(FIXTURE)).collect(1.0)))
    assert set(every) == {"loop0", "vda", "zram0", "sda", "sda1", "nvme0n1", "nvme0n1p1", "dm-0"}
    custom = DiskioCollector(DiskioConfig(device_exclude=r"^(dm-|loop)"), proc_root=str(FIXTURE))
    assert set(by_device(list(custom.collect(1.0)))) == {"vda", "zram0", "sda", "sda1", "nvme0n1", "nvme0n1p1"}


def test_diskio_real_proc_devices_and_monotonic_counters() -> None:
    pattern = re.compile(DEFAULT_DEVICE_EXCLUDE)
    expected = {line.split()[2] for line in read_text("/proc/diskstats").splitlines() if line.strip()}
    expected = {d for d in expected if not pattern.search(d)}
    col = DiskioCollector()
    first = by_device(list(col.collect(1.0)))
    second = by_device(list(col.collect(2.0)))
    assert set(first) == expected
    for dev, metrics in first.items():
        for name, value in metrics.items():
            if name.endswith("_total"):
                assert second[dev][name] >= value


def test_diskio_disk_info_from_diskstats_and_udev(tmp_path: Path) -> None:
    udev = tmp_path / "udev"
    udev.mkdir()
    (udev / "b254:0").write_text("S:disk/by-path/pci-0000:00:05.0\nE:ID_PATH=pci-0000:00:05.0\nE:ID_SERIAL_SHORT=abc\n"
                                 "E:ID_MODEL=\nG:systemd\n")
    col = DiskioCollector(DiskioConfig(), proc_root=str(FIXTURE), udev_data=str(udev))
    info = {s.label("device"): dict(s.labels) for s in col.collect(1.0) if s.name == "node_disk_info"}
    assert info["vda"] == {"device": "vda", "major": "254", "minor": "0", "path": "pci-0000:00:05.0", "serial": "abc"}
    assert set(info) == set(by_device(list(col.collect(2.0))))

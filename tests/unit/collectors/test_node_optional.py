"""node_exporter 1.5's optional-source collectors against fixture trees: golden exposition per
collector (tests/fixtures/collectors/<name>/expected.prom), the values that need a conversion
checked by hand, and nothing reported when the source is absent.

Regenerate a golden after a deliberate change with HOSTWARDEN_UPDATE_GOLDEN=1, then read the diff.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors import base
from hostwarden.exporters.prometheus import Exposition

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collectors"
NAMES = ("thermal_zone", "hwmon", "powersupplyclass", "cpufreq", "edac", "bcache", "btrfs", "xfs", "selinux",
         "schedstat", "nvme", "mdadm", "nfs", "nfsd", "bonding", "ipvs", "rapl", "zfs", "dmi")


def build(name: str, root: Path, **options: object) -> object:
    cls = base.registry()[name]
    params = inspect.signature(cls).parameters
    roots = {k: str(root / k.removesuffix("_root")) for k in ("proc_root", "sys_root", "etc_root") if k in params}
    return cls(cls.Config(**options), **roots)


def collect(name: str, root: Path | None = None, **options: object) -> tuple[object, list[Sample]]:
    col = build(name, root or FIXTURES / name, **options)
    return col, list(col.collect(1.0))  # type: ignore[attr-defined]


def render(name: str, root: Path | None = None, **options: object) -> str:
    col, samples = collect(name, root, **options)
    exp = Exposition(process_metrics=False)
    exp.update(name, samples, col.metrics)  # type: ignore[attr-defined]
    return exp.render().text.decode().replace(str(FIXTURES), "@FIXTURES@")


def values(samples: list[Sample], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for s in samples if s.name == name}


@pytest.mark.parametrize("name", NAMES)
def test_collector_fixture_matches_golden_exposition(name: str) -> None:
    text = render(name)
    golden = FIXTURES / name / "expected.prom"
    if os.environ.get("HOSTWARDEN_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_collector_without_source_reports_nothing(name: str, tmp_path: Path) -> None:
    _, samples = collect(name, tmp_path)
    if name == "selinux":  # node_exporter always says whether SELinux is enabled
        assert [(s.name, s.value) for s in samples] == [("node_selinux_enabled", 0.0)]
    else:
        assert samples == []


@pytest.mark.parametrize("name", NAMES)
def test_collector_metric_definitions_declare_every_label(name: str) -> None:
    col, samples = collect(name)
    assert samples
    for s in samples:
        d = col.metrics[s.name]  # type: ignore[attr-defined]
        assert set(k for k, _ in s.labels) <= set(d.labelnames), s
        assert list(s.labels) == sorted(s.labels)


def test_thermal_zone_millidegrees_to_celsius_and_unreadable_zone_skipped() -> None:
    _, samples = collect("thermal_zone")
    assert values(samples, "node_thermal_zone_temp") == {
        (("type", "x86_pkg_temp"), ("zone", "0")): 48.5, (("type", "acpitz"), ("zone", "1")): -1.0}
    assert values(samples, "node_cooling_device_cur_state")[(("name", "1"), ("type", "intel_powerclamp"))] == -1.0


def test_hwmon_chip_from_device_path_units_and_labels() -> None:
    col, samples = collect("hwmon")
    chip0 = (("chip", "platform_coretemp_0"), ("sensor", "temp1"))
    assert values(samples, "node_hwmon_temp_celsius")[chip0] == 55.0
    assert values(samples, "node_hwmon_temp_crit_alarm_celsius")[chip0] == 0.0
    assert values(samples, "node_hwmon_chip_names") == {
        (("chip", "platform_coretemp_0"), ("chip_name", "coretemp")): 1.0,
        (("chip", "nct6779"), ("chip_name", "nct6779")): 1.0}
    assert (("chip", "platform_coretemp_0"), ("label", "Package id 0"), ("sensor", "temp1")) in values(
        samples, "node_hwmon_sensor_label")
    nct = lambda sensor: (("chip", "nct6779"), ("sensor", sensor))  # noqa: E731
    assert values(samples, "node_hwmon_in_volts")[nct("in0")] == pytest.approx(1.032)
    assert values(samples, "node_hwmon_fan_rpm")[nct("fan2")] == 1098
    assert values(samples, "node_hwmon_fan_beep_enabled")[nct("fan2")] == 0
    assert values(samples, "node_hwmon_pwm")[nct("pwm2")] == 128
    assert values(samples, "node_hwmon_curr_amps")[nct("curr1")] == 2.5
    assert values(samples, "node_hwmon_power_average_watt")[nct("power1")] == pytest.approx(12.345)
    assert values(samples, "node_hwmon_power_average_interval_seconds")[nct("power1")] == 1.0
    assert values(samples, "node_hwmon_energy_joule_total")[nct("energy1")] == 2.5
    assert col.metrics["node_hwmon_energy_joule_total"].type == "counter"  # type: ignore[attr-defined]
    assert values(samples, "node_hwmon_humidity")[nct("humidity1")] == 0.45
    assert values(samples, "node_hwmon_temp_type")[nct("temp7")] == 4
    assert values(samples, "node_hwmon_beep_enabled")[nct("beep_enable0")] == 1
    assert values(samples, "node_hwmon_voltage_regulator_version")[nct("vrm0")] == 9.1
    assert values(samples, "node_hwmon_update_interval_seconds")[nct("update_interval0")] == 0.5
    assert values(samples, "node_hwmon_intrusion_alarm")[nct("intrusion0")] == 1


def test_powersupply_units_info_labels_and_ignored_supplies() -> None:
    _, samples = collect("powersupplyclass")
    bat = (("power_supply", "BAT0"),)
    assert values(samples, "node_power_supply_voltage_volt")[bat] == pytest.approx(12.229)
    assert values(samples, "node_power_supply_energy_watthour")[bat] == pytest.approx(36.54)
    assert values(samples, "node_power_supply_temp_celsius")[bat] == 28.5
    assert values(samples, "node_power_supply_cyclecount")[bat] == 42
    info = {dict(k)["power_supply"]: dict(k) for k in values(samples, "node_power_supply_info")}
    assert info["BAT0"]["technology"] == "Li-ion" and info["BAT0"]["type"] == "Battery"
    assert info["ucsi-source-psy-USBC000:001"]["type"] == "USB"  # from the attribute file
    _, kept = collect("powersupplyclass", ignored_supplies="^(AC|ucsi.*)$")
    assert {s.label("power_supply") for s in kept} == {"BAT0"}


def test_mdadm_states_disks_and_sync_progress() -> None:
    _, samples = collect("mdadm")
    state = {k: v for k, v in values(samples, "node_md_state").items() if v == 1.0}
    assert {dict(k)["device"]: dict(k)["state"] for k in state} == {
        "md3": "active", "md127": "active", "md0": "active", "md4": "inactive", "md6": "recovering",
        "md8": "resync", "md201": "check", "md219": "inactive", "md9": "active", "md10": "active"}
    synced = values(samples, "node_md_blocks_synced")
    assert synced[(("device", "md6"),)] == 16775552 and synced[(("device", "md9"),)] == 523968
    disks = values(samples, "node_md_disks")
    assert disks[(("device", "md6"), ("state", "failed"))] == 1 and disks[(("device", "md6"), ("state", "active"))] == 1
    assert disks[(("device", "md3"), ("state", "spare"))] == 2
    assert values(samples, "node_md_disks_required")[(("device", "md10"),)] == 2


def test_nfs_procedure_names_and_short_v4_line_padded() -> None:
    _, samples = collect("nfs")
    req = values(samples, "node_nfs_requests_total")
    assert req[(("method", "GetAttr"), ("proto", "3"))] == 1061909262
    assert req[(("method", "Clone"), ("proto", "4"))] == 0  # the fixture's proc4 line has 48 of 59
    assert len([k for k in req if dict(k)["proto"] == "4"]) == 59
    assert values(samples, "node_nfs_packets_total")[(("protocol", "tcp"),)] == 69


def test_nfsd_values_and_skipped_procedures() -> None:
    _, samples = collect("nfsd")
    req = values(samples, "node_nfsd_requests_total")
    assert req[(("method", "GetAttr"), ("proto", "4"))] == 8179
    assert req[(("method", "Lookup"), ("proto", "4"))] == 5900
    assert req[(("method", "Lookup"), ("proto", "3"))] == 2719
    assert not any(dict(k)["method"] in ("Null", "PutRootFH") for k in req)
    assert values(samples, "node_nfsd_server_threads")[()] == 8
    assert values(samples, "node_nfsd_rpc_errors_total")[(("error", "fmt"),)] == 1


def test_bcache_human_readable_sizes() -> None:
    _, samples = collect("bcache")
    dev = (("backing_device", "bdev0"), ("uuid", "deaddd54-c735-46d5-868e-f331c5fd7c74"))
    # bcache prints fractions as tenths of 1024ths: "1.5M" is (1 + 5/10.24) MiB, as procfs reads it
    assert values(samples, "node_bcache_dirty_data_bytes")[dev] == int((1 + 5 / 10.24) * 2**20)
    assert values(samples, "node_bcache_writeback_rate_integral_term")[dev] == -(790 * 1024 + 600)
    assert values(samples, "node_bcache_cache_hits_total")[dev] == 546
    _, with_prio = collect("bcache", priority_stats=True)
    assert list(values(with_prio, "node_bcache_priority_stats_unused_percent").values()) == [99.0]


def test_btrfs_raid1_ratio_and_device_sizes() -> None:
    _, samples = collect("btrfs")
    assert set(values(samples, "node_btrfs_allocation_ratio").values()) == {2.0}
    assert set(values(samples, "node_btrfs_device_size_bytes").values()) == {10737418240.0}


def test_ipvs_backends_summed_and_addresses_decoded() -> None:
    _, samples = collect("ipvs")
    assert values(samples, "node_ipvs_connections_total")[()] == 0x16AA370
    active = values(samples, "node_ipvs_backend_connections_active")
    v6 = (("local_address", "2620::1"), ("local_port", "80"), ("proto", "TCP"), ("remote_address", "2620::2"),
          ("remote_port", "80"))
    assert active[v6] == 1
    _, summed = collect("ipvs", backend_labels="local_address,proto")
    assert values(summed, "node_ipvs_backend_connections_active")[
        (("local_address", "192.168.0.57"), ("proto", "TCP"))] == 2997


def test_rapl_zone_names_and_zone_label_option() -> None:
    _, samples = collect("rapl")
    assert {s.name for s in samples} == {"node_rapl_package_joules_total", "node_rapl_core_joules_total",
                                         "node_rapl_mmio_joules_total", "node_rapl_psys_joules_total"}
    assert values(samples, "node_rapl_package_joules_total")[
        (("index", "0"), ("path", str(FIXTURES / "rapl/sys/class/powercap/intel-rapl:0")))] == 240422.366267
    _, zoned = collect("rapl", enable_zone_label=True)
    assert {s.label("rapl_zone") for s in zoned} == {"package", "core", "mmio", "psys"}


def test_zfs_kstats_pool_io_objset_and_state() -> None:
    _, samples = collect("zfs")
    assert values(samples, "node_zfs_arc_hits")[()] == 8772612
    assert values(samples, "node_zfs_zpool_nread")[(("zpool", "pool1"),)] == 1884160
    assert values(samples, "node_zfs_zpool_dataset_nwritten")[(("dataset", "pool1/home"), ("zpool", "pool1"))] == 12302
    states = {k: v for k, v in values(samples, "node_zfs_zpool_state").items() if v == 1}
    assert states == {(("state", "online"), ("zpool", "pool1")): 1, (("state", "degraded"), ("zpool", "poolz1")): 1}


def test_dmi_info_leaves_unreadable_fields_out() -> None:
    _, samples = collect("dmi")
    [info] = samples
    labels = dict(info.labels)
    assert labels["system_vendor"] == "Dell Inc." and labels["product_name"] == "PowerEdge R6515"
    assert "product_serial" not in labels and "chassis_type" not in labels
    assert "board_asset_tag" not in labels  # empty in the fixture


def test_selinux_enforcing_with_permissive_config() -> None:
    _, samples = collect("selinux")
    assert {s.name: s.value for s in samples} == {
        "node_selinux_enabled": 1.0, "node_selinux_current_mode": 1.0, "node_selinux_config_mode": 0.0}

"""/sys/class/power_supply as node_exporter 1.5's `powersupplyclass` collector.

Each supply's properties come from its `uevent` file (one read gives every POWER_SUPPLY_* property,
the same set the kernel exposes as attribute files), converted as node_exporter does: µA/µV/µW/µWh/µAh
→ base units (÷1e6), tenths of °C → °C, plus `node_power_supply_info` with the text properties as
labels. No power_supply class or no supplies (servers, VMs) → nothing. `ignored_supplies` is
node_exporter's --collector.powersupply.ignored-supplies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_str, read_text_or_none

# property (lower-case uevent key) → (metric suffix, divisor)
_NUMERIC: dict[str, tuple[str, float]] = {
    **{p: (p, 1.0) for p in ("authentic", "calibrate", "capacity", "capacity_alert_max", "capacity_alert_min",
                              "online", "present")},
    "cycle_count": ("cyclecount", 1.0),
    "time_to_empty_now": ("time_to_empty_seconds", 1.0),
    "time_to_full_now": ("time_to_full_seconds", 1.0),
    **{p: (p, 1e6) for p in (
        "current_boot", "current_max", "energy_empty", "energy_empty_design", "energy_full", "energy_full_design",
        "voltage_boot", "voltage_max", "voltage_max_design", "voltage_min", "voltage_min_design", "voltage_ocv",
        "charge_control_limit", "charge_control_limit_max", "charge_counter", "charge_empty",
        "charge_empty_design", "charge_full", "charge_full_design", "charge_term_current",
        "constant_charge_current", "constant_charge_current_max", "constant_charge_voltage",
        "constant_charge_voltage_max", "precharge_current", "input_current_limit")},
    "current_now": ("current_ampere", 1e6),
    "energy_now": ("energy_watthour", 1e6),
    "voltage_now": ("voltage_volt", 1e6),
    "charge_now": ("charge_ampere", 1e6),
    "power_now": ("power_watt", 1e6),
    "temp": ("temp_celsius", 10.0),
    **{p: (p + "_celsius", 10.0) for p in ("temp_alert_max", "temp_alert_min", "temp_ambient", "temp_ambient_max",
                                            "temp_ambient_min", "temp_max", "temp_min")},
}
_INFO = ("capacity_level", "charge_type", "health", "manufacturer", "model_name", "serial_number", "status",
         "technology", "type", "usb_type", "scope")


@dataclass(frozen=True)
class PowerSupplyClassConfig(CollectorConfig):
    ignored_supplies: str = "^$"  # regex of supply names to leave out


@register("powersupplyclass")
class PowerSupplyClassCollector:
    Config = PowerSupplyClassConfig

    def __init__(self, config: PowerSupplyClassConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or PowerSupplyClassConfig()
        self._ignored = re.compile(self.config.ignored_supplies)
        self._dir = os.path.join(sys_root, "class", "power_supply")
        self.metrics: dict[str, MetricDef] = metric_defs(
            MetricDef("node_power_supply_info", "gauge", "info of /sys/class/power_supply/<power_supply>.",
                      ("power_supply", *_INFO)),
            *(MetricDef(f"node_power_supply_{suffix}", "gauge",
                        f"{suffix} value of /sys/class/power_supply/<power_supply>.", ("power_supply",))
              for suffix, _ in _NUMERIC.values()),
        )

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for supply in listdir(self._dir):
            if self._ignored.search(supply):
                continue
            props = _uevent(os.path.join(self._dir, supply))
            if props is None:
                continue
            labels = (("power_supply", supply),)
            info: dict[str, str] = {"power_supply": supply}
            for key, value in props.items():
                conv = _NUMERIC.get(key)
                if conv is not None:
                    try:
                        out.append(Sample(f"node_power_supply_{conv[0]}", labels, int(value) / conv[1], now))
                    except ValueError:
                        pass
                elif key in _INFO and value:
                    info[key] = value
            out.append(Sample("node_power_supply_info", tuple(sorted(info.items())), 1.0, now))
        return out


def _uevent(path: str) -> dict[str, str] | None:
    text = read_text_or_none(os.path.join(path, "uevent"))
    if text is None:
        return None
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("POWER_SUPPLY_"):
            props[key[13:].lower()] = value
    if "type" not in props:  # kernels before 5.8 leave TYPE out of uevent
        kind = read_str(os.path.join(path, "type"))
        if kind:
            props["type"] = kind
    props.pop("name", None)
    return props

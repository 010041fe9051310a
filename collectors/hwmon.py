"""/sys/class/hwmon as node_exporter 1.5's `hwmon` collector.

Every `<type><n>_<property>` file of a chip (and of its `device` directory) becomes a series
`node_hwmon_<type>[_<property>]<unit>{chip,sensor}` with node_exporter's unit conversions (mV → V,
m°C → °C, mA → A, µW → W, µJ → J), plus `node_hwmon_chip_names{chip,chip_name}` and
`node_hwmon_sensor_label{chip,sensor,label}`. The chip label is derived from the device path
(`platform_coretemp_0`), else the chip's `name`. No hwmon class (VMs) → nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_str

_INVALID = re.compile(r"[^a-z0-9:_]")
_FILENAME = re.compile(r"^([^0-9]+)([0-9]*)(?:_(.+))?$")
SENSOR_TYPES = frozenset(("vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr",
                          "power", "energy", "humidity", "intrusion"))
_LABELS = ("chip", "sensor")


def clean(name: str) -> str:
    return _INVALID.sub("_", name.lower()).strip("_")


@dataclass(frozen=True)
class HwmonConfig(CollectorConfig):
    pass


@register("hwmon")
class HwmonCollector:
    Config = HwmonConfig

    def __init__(self, config: HwmonConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or HwmonConfig()
        self._dir = os.path.join(sys_root, "class", "hwmon")
        self.metrics: dict[str, MetricDef] = metric_defs(
            MetricDef("node_hwmon_chip_names", "gauge", "Annotation metric for human-readable chip names",
                      ("chip", "chip_name")),
            MetricDef("node_hwmon_sensor_label", "gauge", "Label for given chip and sensor",
                      ("chip", "label", "sensor")),
        )

    def _define(self, name: str, mtype: str, help_text: str) -> None:
        if name not in self.metrics:
            self.metrics = {**self.metrics, name: MetricDef(name, mtype, help_text, _LABELS)}

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for entry in listdir(self._dir):
            path = os.path.join(self._dir, entry)
            if os.path.isdir(path):
                self._chip(path, now, out)
        return out

    def _chip(self, path: str, now: float, out: list[Sample]) -> None:
        raw_name = read_str(os.path.join(path, "name"))
        chip = _chip_name(path, raw_name)
        if not chip:
            return
        data: dict[str, dict[str, str]] = {}
        _sensor_files(path, data)
        device = os.path.join(path, "device")
        if os.path.isdir(device):
            _sensor_files(device, data)
        if raw_name and clean(raw_name):
            out.append(Sample("node_hwmon_chip_names", (("chip", chip), ("chip_name", clean(raw_name))), 1.0, now))
        for sensor, props in data.items():
            kind = _FILENAME.match(sensor).group(1)  # type: ignore[union-attr]
            labels = (("chip", chip), ("sensor", sensor))
            if "label" in props:
                out.append(Sample("node_hwmon_sensor_label",
                                  (("chip", chip), ("label", props["label"]), ("sensor", sensor)), 1.0, now))
            if kind == "beep_enable":
                self._emit(out, "node_hwmon_beep_enabled", "gauge", "Hardware beep enabled", labels,
                           1.0 if props.get("") == "1" else 0.0, now)
                continue
            if kind in ("vrm", "update_interval"):
                value = _float(props.get(""))
                if value is not None:
                    if kind == "vrm":
                        self._emit(out, "node_hwmon_voltage_regulator_version", "gauge", "Hardware voltage regulator",
                                   labels, value, now)
                    else:
                        self._emit(out, "node_hwmon_update_interval_seconds", "gauge",
                                   "Hardware monitor update interval", labels, value * 0.001, now)
                continue
            for element, text in props.items():
                if element != "label":
                    value = _float(text)
                    if value is not None:
                        self._element(out, kind, element, "" in props, labels, value, now)

    def _element(self, out: list[Sample], kind: str, element: str, has_bare: bool, labels: tuple,
                 value: float, now: float) -> None:
        name = "node_hwmon_" + kind
        if element == "input":
            if has_bare:
                name += "_input"
        elif element:
            name += "_" + clean(element)
        if element in ("fault", "alarm"):
            self._emit(out, name, "gauge", f"Hardware sensor {element} status ({kind})", labels, value, now)
        elif element == "beep":
            self._emit(out, name + "_enabled", "gauge", "Hardware monitor sensor has beeping enabled", labels,
                       value, now)
        elif kind in ("in", "cpu"):
            self._emit(out, name + "_volts", "gauge", f"Hardware monitor for voltage ({element})", labels,
                       value * 0.001, now)
        elif kind == "temp" and element != "type":
            self._emit(out, name + "_celsius", "gauge", f"Hardware monitor for temperature ({element or 'input'})",
                       labels, value * 0.001, now)
        elif kind == "curr":
            self._emit(out, name + "_amps", "gauge", f"Hardware monitor for current ({element})", labels,
                       value * 0.001, now)
        elif kind == "energy":
            self._emit(out, name + "_joule_total", "counter", f"Hardware monitor for joules used so far ({element})",
                       labels, value / 1e6, now)
        elif kind == "power" and element == "accuracy":
            self._emit(out, name, "gauge", "Hardware monitor power meter accuracy, as a ratio", labels,
                       value / 1e6, now)
        elif kind == "power" and element in ("average_interval", "average_interval_min", "average_interval_max"):
            self._emit(out, name + "_seconds", "gauge", f"Hardware monitor power usage update interval ({element})",
                       labels, value * 0.001, now)
        elif kind == "power":
            self._emit(out, name + "_watt", "gauge", f"Hardware monitor for power usage in watts ({element})",
                       labels, value / 1e6, now)
        elif kind == "humidity":
            self._emit(out, name, "gauge", "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get "
                       f"the humidity as a percentage) ({element})", labels, value / 1e6, now)
        elif kind == "fan" and element in ("input", "min", "max", "target"):
            self._emit(out, name + "_rpm", "gauge", f"Hardware monitor for fan revolutions per minute ({element})",
                       labels, value, now)
        else:
            self._emit(out, name, "gauge", f"Hardware monitor {kind} element {element}", labels, value, now)

    def _emit(self, out: list[Sample], name: str, mtype: str, help_text: str, labels: tuple, value: float,
              now: float) -> None:
        self._define(name, mtype, help_text)
        out.append(Sample(name, labels, value, now))


def _sensor_files(path: str, data: dict[str, dict[str, str]]) -> None:
    for fname in listdir(path):
        m = _FILENAME.match(fname)
        if m is None or m.group(1) not in SENSOR_TYPES:
            continue
        text = read_str(os.path.join(path, fname))
        if text is None:
            continue
        sensor = m.group(1) + str(int(m.group(2) or 0))
        data.setdefault(sensor, {})[m.group(3) or ""] = text


def _chip_name(path: str, raw_name: str | None) -> str:
    device = os.path.join(path, "device")
    if os.path.exists(device):
        real = os.path.realpath(device)
        dev_name = clean(os.path.basename(real))
        dev_type = clean(os.path.basename(os.path.dirname(real)))
        if dev_type and dev_name:
            return f"{dev_type}_{dev_name}"
        if dev_name:
            return dev_name
    if raw_name and clean(raw_name):
        return clean(raw_name)
    return clean(os.path.basename(os.path.realpath(path)))


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None

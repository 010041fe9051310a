"""Kernel clock discipline state from adjtimex(2), as node_exporter's `timex` collector.

The node-mixin's clock alerts read `node_timex_offset_seconds`, `node_timex_sync_status` and
`node_timex_maxerror_seconds`. adjtimex with modes=0 only reads; it is called through ctypes
(Python's standard library has no binding). Units follow node_exporter: offset and PPS jitter
in ns or µs depending on STA_NANO, frequencies in 2^-16 ppm, errors and tick in µs.
`node_timex_sync_status` is 0 when the call returns TIME_ERROR (clock not synchronised).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register

TIME_ERROR = 5
STA_NANO = 0x2000
PPM16FRAC = 1000000.0 * 65536.0
_L, _I = ctypes.c_long, ctypes.c_int


class Timex(ctypes.Structure):
    """struct timex (linux/timex.h); natural alignment gives the kernel's padding."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", _L), ("freq", _L), ("maxerror", _L), ("esterror", _L),
                ("status", _I), ("constant", _L), ("precision", _L), ("tolerance", _L),
                ("time_sec", _L), ("time_usec", _L), ("tick", _L), ("ppsfreq", _L), ("jitter", _L),
                ("shift", _I), ("stabil", _L), ("jitcnt", _L), ("calcnt", _L), ("errcnt", _L), ("stbcnt", _L),
                ("tai", _I), ("_reserved", _I * 11)]


_libc: list[ctypes.CDLL] = []


def read_adjtimex() -> tuple[int, Timex]:
    """(clock state returned by adjtimex, the struct); OSError on failure."""
    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    tx = Timex()
    state = _libc[0].adjtimex(ctypes.byref(tx))
    if state < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return state, tx


@dataclass(frozen=True)
class TimexConfig(CollectorConfig):
    pass


@register("timex")
class TimexCollector:
    Config = TimexConfig
    metrics = metric_defs(
        MetricDef("node_timex_offset_seconds", "gauge", "Time offset in between local system and reference clock."),
        MetricDef("node_timex_frequency_adjustment_ratio", "gauge", "Local clock frequency adjustment."),
        MetricDef("node_timex_maxerror_seconds", "gauge", "Maximum error in seconds."),
        MetricDef("node_timex_estimated_error_seconds", "gauge", "Estimated error in seconds."),
        MetricDef("node_timex_status", "gauge", "Value of the status array bits."),
        MetricDef("node_timex_loop_time_constant", "gauge", "Phase-locked loop time constant."),
        MetricDef("node_timex_tick_seconds", "gauge", "Seconds between clock ticks."),
        MetricDef("node_timex_pps_frequency_hertz", "gauge", "Pulse per second frequency."),
        MetricDef("node_timex_pps_jitter_seconds", "gauge", "Pulse per second jitter."),
        MetricDef("node_timex_pps_shift_seconds", "gauge", "Pulse per second interval duration."),
        MetricDef("node_timex_pps_stability_hertz", "gauge",
                  "Pulse per second stability, average of recent frequency changes."),
        MetricDef("node_timex_pps_jitter_total", "counter", "Pulse per second count of jitter limit exceeded events."),
        MetricDef("node_timex_pps_calibration_total", "counter", "Pulse per second count of calibration intervals."),
        MetricDef("node_timex_pps_error_total", "counter", "Pulse per second count of calibration errors."),
        MetricDef("node_timex_pps_stability_exceeded_total", "counter",
                  "Pulse per second count of stability limit exceeded events."),
        MetricDef("node_timex_tai_offset_seconds", "gauge", "International Atomic Time (TAI) offset."),
        MetricDef("node_timex_sync_status", "gauge", "Is clock synchronized to a reliable server (1 = yes, 0 = no)."),
    )

    def __init__(self, config: TimexConfig | None = None, *,
                 adjtimex: Callable[[], tuple[int, Timex]] = read_adjtimex) -> None:
        self.config = config or TimexConfig()
        self._adjtimex = adjtimex

    def collect(self, now: float) -> Iterable[Sample]:
        try:
            state, tx = self._adjtimex()
        except PermissionError:
            return []  # seccomp or a sandbox forbids it: no data, as node_exporter
        div = 1e9 if tx.status & STA_NANO else 1e6
        values = (
            ("node_timex_sync_status", 0.0 if state == TIME_ERROR else 1.0),
            ("node_timex_offset_seconds", tx.offset / div),
            ("node_timex_frequency_adjustment_ratio", 1 + tx.freq / PPM16FRAC),
            ("node_timex_maxerror_seconds", tx.maxerror / 1e6),
            ("node_timex_estimated_error_seconds", tx.esterror / 1e6),
            ("node_timex_status", float(tx.status)),
            ("node_timex_loop_time_constant", float(tx.constant)),
            ("node_timex_tick_seconds", tx.tick / 1e6),
            ("node_timex_pps_frequency_hertz", tx.ppsfreq / PPM16FRAC),
            ("node_timex_pps_jitter_seconds", tx.jitter / div),
            ("node_timex_pps_shift_seconds", float(tx.shift)),
            ("node_timex_pps_stability_hertz", tx.stabil / PPM16FRAC),
            ("node_timex_pps_jitter_total", float(tx.jitcnt)),
            ("node_timex_pps_calibration_total", float(tx.calcnt)),
            ("node_timex_pps_error_total", float(tx.errcnt)),
            ("node_timex_pps_stability_exceeded_total", float(tx.stbcnt)),
            ("node_timex_tai_offset_seconds", float(tx.tai)),
        )
        return [Sample(name, (), value, now) for name, value in values]

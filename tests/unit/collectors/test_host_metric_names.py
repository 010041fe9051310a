"""The host collectors' names: node_exporter's where it has them, lint-clean hostwarden_* names otherwise."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hostwarden.collectors import base
from hostwarden.collectors.textfile import TextfileConfig
from hostwarden.exporters.prometheus import Exposition

HOST = ("cpu", "memory", "filesystem", "diskio", "network", "load", "uptime", "textfile")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def build_all(tmp_path: Path) -> dict[str, object]:
    reg = base.registry()
    out = {}
    for name in HOST:
        cls = reg[name]
        cfg = TextfileConfig(directory=str(tmp_path)) if name == "textfile" else cls.Config()
        out[name] = cls(cfg)
    return out


def test_host_collectors_registered_with_default_config_enabled() -> None:
    reg = base.registry()
    for name in HOST:
        assert name in base.DEFAULT_ENABLED
        cfg = reg[name].Config()
        assert cfg.enabled is True and cfg.interval is None


def test_host_metric_definitions_follow_naming_rules(tmp_path: Path) -> None:
    cols = build_all(tmp_path)
    for col in cols.values():
        col.collect(time.time())  # memory adds its per-field definitions on first sight
        for name, d in col.metrics.items():
            assert d.name == name
            if d.type == "counter":
                assert name.endswith("_total"), name
            else:
                assert not name.endswith("_total"), name
            if name.startswith("hostwarden_"):
                assert SNAKE.match(name), name
                assert d.type == "gauge" and d.help


def test_host_exposition_passes_promtool_lint_except_inherited_meminfo_names(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    (tmp_path / "backup.prom").write_text("# HELP backup_ok Whether the last backup worked.\n"
                                          "# TYPE backup_ok gauge\nbackup_ok 1\n")
    cols = build_all(tmp_path)
    for col in cols.values():
        col.collect(time.time())
    cpu_samples: list = []
    for _ in range(100):  # a second cpu collect with at least one tick elapsed gives the usage ratio
        time.sleep(0.02)
        cpu_samples = list(cols["cpu"].collect(time.time()))
        if any(s.name == "hostwarden_cpu_usage_ratio" for s in cpu_samples):
            break
    exp = Exposition(process_metrics=False)
    for name, col in cols.items():
        exp.update(name, cpu_samples if name == "cpu" else col.collect(time.time()), col.metrics)
    text = exp.render().text.decode()
    for needed in ("node_cpu_seconds_total", "hostwarden_cpu_usage_ratio", "node_memory_MemTotal_bytes",
                   "hostwarden_filesystem_used_ratio", "node_load1", "hostwarden_load1_per_cpu",
                   "node_network_receive_bytes_total", "node_boot_time_seconds", "node_textfile_scrape_error"):
        assert f"\n{needed}" in text
    run = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    findings = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    unexpected = [f for f in findings if not re.match(r"^node_memory_\w+ metric names should be written in "
                                                      r"'snake_case' not 'camelCase'$", f)]
    assert unexpected == []

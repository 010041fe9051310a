"""The HTML report (`hostwarden report --format html`) opened in a real headless chromium: the DOM chromium builds has
every chart as SVG and nothing blocked or missing, and a screenshot is kept under build/ (git-ignored) for a look."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hostwarden.agent.core.priority import build_policy
from hostwarden.agent.incidents.report import build_report
from hostwarden.agent.incidents.state import StateDB

from tests.support.agent import ROOT, run_cli
from tests.support.report_fixture import NOW, WINDOWS, T, populate

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2400


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + str(PROFILE), *args],
                          capture_output=True, text=True, timeout=timeout)


PROFILE = Path("/tmp/hostwarden-chromium-profile")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (tests/debian-packages.txt)")
def test_report_html_renders_in_headless_chromium_with_screenshot(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = StateDB(str(state_dir / "state.db"))
    populate(state)
    state.close()
    # the CLI writes the file (the period is "the last ten years" here: the fixture is from 2023)
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {state_dir}\n  hostname: web-1\n")
    cli_out = tmp_path / "cli-report.html"
    res = run_cli("report", "--since", "3650d", "--format", "html", "--output", str(cli_out), "--config", str(cfg))
    assert res.returncode == 0 and res.stdout == "", res.stderr
    assert cli_out.read_text().startswith("<!DOCTYPE html>")
    # the screenshot: the fixture's own ten days, as a monthly review would show them
    from hostwarden.agent.incidents.report_html import render_html

    state = StateDB(str(state_dir / "state.db"))
    rep = build_report(state, since=T, now=NOW, policy=build_policy({}, "P3", {}), checks=["web", "db"],
                       windows=WINDOWS)
    state.close()
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    page = build / "report.html"
    page.write_text(render_html(rep, host="web-1"))

    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 7  # rule, priority, category, MTTR; availability; occurrences, flapping
    assert "<rect" in dom.stdout and "Service report — web-1" in dom.stdout
    assert "99.375%" in dom.stdout and "DiskFull" in dom.stdout

    shot = build / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    res = chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", page.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(data) > 50_000  # a blank page compresses to a few KB; charts and tables do not
    cli_copy = build / "report-cli.html"
    shutil.copyfile(cli_out, cli_copy)

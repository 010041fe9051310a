"""The status page in a real headless chromium against a real `hostwarden run`: it renders without console
errors, an alert made to fire by a textfile change appears with its chart and its ticket link (followed to
the ticket), hostile label text stays text, the page fits a phone's width and the keyboard reaches it.
Screenshots are kept under build/screenshots/."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.support.agent import run_cli, start_agent, wait_for, write_config
from tests.support.browser import chromium, console_errors, screenshot

pytestmark = pytest.mark.integration

HOSTILE = '<img src=x onerror="document.title=1">'
RULES = """
groups:
  - name: browser
    interval: 1s
    rules:
      - alert: DemoValueHigh
        expr: demo_value > 10
        for: 1s
        labels: {severity: critical}
        annotations:
          summary: "demo value is {{ $value }}"
          runbook_url: docs/runbooks.md#hosthighcpuusage
      - alert: DemoValueLevels
        expr: demo_value
        warning: "> 5"
        critical: "> 40"
"""


def set_value(tmp_path: Path, value: float) -> None:
    d = tmp_path / "state" / "textfile"
    d.mkdir(parents=True, exist_ok=True)
    label = HOSTILE.replace('"', '\\"')
    (d / ".demo.tmp").write_text(f'# TYPE demo_value gauge\ndemo_value{{kind="{label}"}} {value}\n')
    os.replace(d / ".demo.tmp", d / "demo.prom")


def status(agent) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(agent.scrape("/api/hostwarden/v1/status"))


def test_status_page_in_chromium_alert_fires_with_chart_and_ticket_link(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "backup.dump").write_text("x")
    set_value(tmp_path, 3)
    cfg = write_config(tmp_path, "rule_files: [rules.yaml]\n"
                                 f"checks:\n  - {{name: backup, type: file, path: {tmp_path / 'backup.dump'}}}\n"
                                 f"  - {{name: missing, type: file, path: {tmp_path / 'nothing-here'}}}\n")
    agent = start_agent(cfg)
    driver = chromium()
    try:
        driver.get(agent.url + "/")
        assert "Nothing is firing or pending" in driver.page_source
        assert not console_errors(driver), console_errors(driver)

        set_value(tmp_path, 50)
        wait_for(lambda: all(a["ticket"] for a in status(agent)["alerts"]) and len(status(agent)["alerts"]) == 2,
                 20, what="both alerts firing with tickets")
        time.sleep(2.5)  # a few more samples for the chart
        driver.get(agent.url + "/")
        errors = console_errors(driver)
        assert not errors, errors
        assert driver.title.startswith("testhost — 2 firing"), driver.title  # the hostile label's onerror never ran

        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        rows = driver.find_elements(By.CSS_SELECTOR, "#alerts + .scroll tbody tr")
        assert len(rows) == 2
        row = next(r for r in rows if "DemoValueHigh" in r.text)
        assert "FIRING" in row.text.upper() and "critical" in row.text and "> 10" in row.text
        assert HOSTILE in row.text  # shown as text ...
        assert not driver.find_elements(By.CSS_SELECTOR, "main img")  # ... never as markup
        silences = run_cli("silence", "--help").returncode == 0  # this build has `hostwarden silence`
        assert bool(driver.find_elements(By.XPATH, "//th[normalize-space()='Silenced']")) == silences

        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 2
        for chart in charts:
            assert chart.find_elements(By.CSS_SELECTOR, "polyline.series"), chart.get_attribute("outerHTML")[:400]
            assert chart.find_elements(By.CSS_SELECTOR, "line.threshold")
        high = driver.find_element(By.CSS_SELECTOR, "section.card[id^='chart-'] h3")
        assert high.is_displayed()
        levels = driver.find_element(By.XPATH,
                                     "//section[contains(@class,'card')][.//h3[contains(.,'DemoValueLevels')]]")
        assert len(levels.find_elements(By.CSS_SELECTOR, "line.threshold")) == 2  # warning and critical

        checks = driver.find_element(By.ID, "checks").text
        assert "1 of 2 OK" in checks
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.timeline rect")) == 2  # two incidents today

        desktop = screenshot(driver, "status-desktop")
        assert desktop.stat().st_size > 10_000

        link = row.find_element(By.PARTIAL_LINK_TEXT, "local #")
        href = link.get_attribute("href")
        assert href.startswith(agent.url + "/tickets/local/")
        link.click()
        wait_for(lambda: "/tickets/local/" in driver.current_url, 10, what="the ticket page")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "demo value is 50" in body
        runbook = f"http://testhost:{agent.port}/docs/runbooks.md#hosthighcpuusage"
        assert runbook in body  # the relative runbook_url, resolved against the agent's own URL
        assert not console_errors(driver)

        driver.get(runbook.replace("testhost", "127.0.0.1"))  # served by the agent, anchored per alert
        section = driver.find_element(By.ID, "hosthighcpuusage")
        assert section.find_element(By.TAG_NAME, "h2").text == "HostHighCpuUsage"
        assert section.find_elements(By.CSS_SELECTOR, "ol li")
        driver.get(agent.url + "/runbooks/HostHighCpuUsage")
        assert driver.find_element(By.TAG_NAME, "h1").text == "HostHighCpuUsage"
        assert not console_errors(driver)

        driver.set_window_size(390, 844)  # a phone
        driver.get(agent.url + "/")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone"
        screenshot(driver, "status-phone")

        if silences:  # a silence shows on the page once silences exist
            added = run_cli("silence", "add", "--config", str(cfg), "--match", "alertname=DemoValueHigh",
                            "--duration", "1h", "--comment", "browser test")
            assert added.returncode == 0, added.stderr
            silence_id = added.stdout.strip()

            def silenced_cell() -> str:
                driver.get(agent.url + "/")
                row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#alerts + .scroll tbody tr")
                           if "DemoValueHigh" in r.text)
                return row.find_element(By.CSS_SELECTOR, "td[data-label='Silenced']").text

            assert silence_id and silence_id in wait_for(lambda: silence_id in silenced_cell() and silenced_cell(),
                                                         10, what="the silence on the page")
            other = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#alerts + .scroll tbody tr")
                         if "DemoValueLevels" in r.text)
            assert other.find_element(By.CSS_SELECTOR, "td[data-label='Silenced']").text == "no"
            screenshot(driver, "status-silenced")

        driver.set_window_size(1280, 900)
        driver.get(agent.url + "/")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        focused = driver.switch_to.active_element
        assert focused.text == "Skip to alerts"
        focused.send_keys(Keys.ENTER)
        assert driver.current_url.endswith("#alerts")
        assert not console_errors(driver)
    finally:
        driver.quit()
        assert agent.stop() == 0, agent.log_text()

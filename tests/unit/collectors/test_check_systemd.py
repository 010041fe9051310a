"""systemd check: the pure verdict and config validation (D-Bus: tests/integration/test_checks_systemd.py)."""

from __future__ import annotations

from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.check_systemd import SystemdConfig, UnitInfo, describe_error, evaluate


def test_evaluate_reloading_counts_as_ok_and_type_from_suffix() -> None:
    result = evaluate([UnitInfo("a.service", "loaded", "reloading", "reload", 0),
                       UnitInfo("b.socket", "loaded", "active", "listening")], SystemdConfig(name="s", units=["x"]))
    assert result.ok and result.message == "2 units OK"
    types = {s.label("name"): s.label("type") for s in result.samples if s.name == "node_systemd_unit_state"}
    assert types == {"a.service": "service", "b.socket": "socket"}
    # 'reloading' is not one of node_exporter's five states: all five series are 0 for it
    assert [s.value for s in result.samples if s.label("name") == "a.service"
            and s.name == "node_systemd_unit_state"] == [0, 0, 0, 0, 0]


def test_evaluate_ok_states_configurable_for_oneshot_units() -> None:
    units = [UnitInfo("job.service", "loaded", "inactive", "dead", 0)]
    assert not evaluate(units, SystemdConfig(name="s", unit="job.service")).ok
    assert evaluate(units, SystemdConfig(name="s", unit="job.service", ok_states=["active", "inactive"])).ok


def test_evaluate_many_bad_units_message_is_bounded() -> None:
    units = [UnitInfo(f"u{i}.service", "loaded", "failed", "failed", 0) for i in range(8)]
    result = evaluate(units, SystemdConfig(name="s", pattern=Regex("u.*")))
    assert result.message.endswith("; and 3 more")
    assert [s.value for s in result.samples if s.name == "hostwarden_systemd_units_failed"] == [8]


def test_systemd_config_requires_exactly_one_selector() -> None:
    assert "exactly one of unit, units or pattern is required" in SystemdConfig(name="s").validate()
    both = SystemdConfig(name="s", unit="a.service", pattern=Regex("b"))
    assert "exactly one of unit, units or pattern is required" in both.validate()
    assert SystemdConfig(name="s", units=["a.service", "b.service"]).validate() == []


def test_describe_error_messages() -> None:
    assert describe_error(FileNotFoundError(2, "No such file or directory")) == \
        "system bus not available: No such file or directory"
    assert describe_error(TimeoutError()) == "D-Bus call timed out"

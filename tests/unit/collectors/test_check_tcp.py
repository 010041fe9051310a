"""tcp check: address parsing and config validation (real sockets: tests/integration/test_checks_tcp.py)."""

from __future__ import annotations

import pytest
from hostwarden.collectors.check_tcp import TcpConfig, split_host_port


@pytest.mark.parametrize(("address", "error"), [("nohost", "expected HOST:PORT"), ("::1:80", "brackets"),
                                                ("h:0", "port must be"), ("h:http", "port must be")])
def test_split_host_port_rejects_bad_addresses(address: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        split_host_port(address)


def test_split_host_port_accepts_names_and_brackets() -> None:
    assert split_host_port("db.example:5432") == ("db.example", 5432)
    assert split_host_port("[::1]:22") == ("::1", 22)


def test_tcp_config_validate_reports_bad_address() -> None:
    assert TcpConfig(name="t", address="nohost").validate() == ["address 'nohost': expected HOST:PORT"]
    assert TcpConfig(name="t", address="127.0.0.1:22").validate() == []

"""http check: config validation and certificate date parsing (servers: tests/integration/test_checks_http.py)."""

from __future__ import annotations

import pytest
from hostwarden.collectors.check_http import HttpConfig, _asn1_time, cert_expiry_days


def test_http_config_defaults_follow_blackbox() -> None:
    c = HttpConfig(name="h", url="https://127.0.0.1/")
    assert (c.method, c.status, c.follow_redirects, c.verify) == ("GET", [], True, True)
    assert c.validate() == []


@pytest.mark.parametrize(("kw", "problem"), [
    ({"url": "ftp://x/"}, "expected http:// or https://"),
    ({"method": "FETCH"}, "method 'FETCH'"),
    ({"status": [99]}, "codes must be 100-599"),
    ({"password_env": "P"}, "need username"),
    ({"username": "u", "password_env": "P", "password_file": "f"}, "not both"),
    ({"username": "u", "bearer_token_env": "T"}, "mutually exclusive"),
])
def test_http_config_validation(kw: dict, problem: str) -> None:
    kw.setdefault("url", "http://127.0.0.1/")
    assert any(problem in p for p in HttpConfig(name="h", **kw).validate())


def test_asn1_times_utc_and_generalized() -> None:
    assert _asn1_time(0x17, b"491231235959Z") == 2524607999.0  # UTCTime: YY < 50 is 20YY
    assert _asn1_time(0x17, b"700101000000Z") == 0.0
    assert _asn1_time(0x18, b"20500101000000Z") == 2524608000.0


def test_cert_expiry_days_is_pure() -> None:
    assert cert_expiry_days(86400 * 10 + 100.0, 100.0) == 10.0
    assert cert_expiry_days(0.0, 86400.0) == -1.0

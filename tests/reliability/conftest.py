"""Reliability tests: fault injection, scheduler pauses, clock jumps, fuzzed input, security properties.

The fast ones run in the default suite. Tests marked `@pytest.mark.slow` (minutes-long pauses, larger
fuzz budgets) are skipped unless `HOSTWARDEN_SLOW=1` (`make reliability-slow`).
"""

from __future__ import annotations

import os

import pytest

SLOW_ENV = "HOSTWARDEN_SLOW"


def slow_enabled() -> bool:
    return os.environ.get(SLOW_ENV, "") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slow") is not None and not slow_enabled():
        pytest.skip(f"slow reliability test: set {SLOW_ENV}=1 (or run `make reliability-slow`) to run it")

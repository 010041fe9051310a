"""Session-scoped fixtures for the real servers the integration tests start (each in its own module)."""

from tests.integration.servers.redmine import redmine_server  # noqa: F401
from tests.integration.servers.rt import rt_server  # noqa: F401

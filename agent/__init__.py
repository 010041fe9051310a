"""hostwarden agent: daemon, CLI, scheduling, state and config loading."""

__version__ = "0.1.0"

"""The lowest layer: value types, config schema, units, clock, store, paths; imports nothing above it."""

__version__ = "0.2.0"

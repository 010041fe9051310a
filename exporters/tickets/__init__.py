"""Ticket backends: one module per ticketing system, each registering itself by its `type:` name."""

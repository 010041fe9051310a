"""Collectors: one module per source, each registering itself by its config name."""

"""Exporters: Prometheus exposition and ticket backends."""

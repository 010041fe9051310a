"""Incident layer: the incident manager, its state database, the outbox, diagnosis and reports."""

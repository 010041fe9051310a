"""hostwarden agent: the application — CLI commands, daemon (the composition root), config assembly."""

"""One registry shape for every plugin kind (collectors, checks, ticket backends): Telegraf's idea.

A module registers its class with a decorator; the registry imports the kind's modules on first use.
Registering two classes under one name is an error, and `validate` checks the class's contract at import
time, so a broken plugin fails the first `check-config`, not the first collection.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...], name_attr: str,
                 validate: Callable[[str, type], None] | None = None) -> None:
        self.kind = kind  # "collector", "check type", "ticket backend": for error messages
        self.modules = modules  # every module that registers into this registry
        self.name_attr = name_attr  # the class attribute set to the registered name
        self.validate = validate
        self._classes: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str) -> Any:
        def deco(cls: type) -> type:
            known = self._classes.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"{self.kind} {name!r} registered twice ({known.__module__}, {cls.__module__})")
            if not isinstance(getattr(cls, "Config", None), type):
                raise TypeError(f"{self.kind} {name!r} has no Config dataclass")
            if self.validate is not None:
                self.validate(name, cls)
            setattr(cls, self.name_attr, name)
            self._classes[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        """The plugin names without importing anything: for kinds whose modules are each named after the one
        plugin they register (ticket backends: `tickets/jira.py` registers "jira")."""
        return [m.rsplit(".", 1)[1] for m in self.modules]

    def get(self, name: str) -> type | None:
        """One plugin's class, importing only the module named after it (the agent then does not load, say,
        requests or smtplib for backends it does not use); every module when no module has that name."""
        if name not in self._classes and not self._loaded:
            mod = next((m for m in self.modules if m.rsplit(".", 1)[1] == name), None)
            if mod is not None:
                importlib.import_module(mod)
            if name not in self._classes:
                self.classes()
        return self._classes.get(name)

    def classes(self) -> dict[str, type]:
        """Every registered class by name, importing the kind's modules the first time."""
        if not self._loaded:
            for mod in self.modules:
                importlib.import_module(mod)
            self._loaded = True
        return self._classes

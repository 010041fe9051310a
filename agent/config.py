"""The agent config: load, validate everything at once, report `file:line:col: problem`.

Sections owned by other modules are parsed by them (same Errors sink, same locations):
`checks:` by collectors.checks, `tickets:` by exporters.tickets.config, `receiver:` by
exporters.receiver. A module that is not installed yet makes its section an error, not a silence.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core import paths
from hostwarden.agent.core.schema import MISSING, ConfigErrors, Duration, Errors, Regex, build, did_you_mean, short
from hostwarden.agent.core.yamlsrc import Loc, LocDict, YAMLSourceError, load_yaml_file

DEFAULT_PORT = 19842
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class GlobalConfig:
    interval: Duration = Duration(10)
    evaluation_interval: Duration | None = None  # default: interval
    state_dir: str | None = None  # default: paths.default_state_dir()
    external_labels: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None  # default: socket.gethostname(); also the `host` external label

    def validate(self) -> list[str]:
        if self.interval <= 0:
            return ["interval must be positive"]
        return []


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = DEFAULT_LISTEN
    telemetry_path: str = "/metrics"
    config_file: str | None = None  # exporter-toolkit web config (TLS, basic auth)
    max_requests: int = 40
    # the agent's URL as others reach it (Prometheus' --web.external-url); default http(s)://HOSTNAME:PORT/
    external_url: str | None = None
    # relative `runbook_url` annotations are resolved against it in tickets; default EXTERNAL_URL (the agent serves
    # docs/runbooks.md and /runbooks/NAME)
    runbook_base_url: str | None = None

    def validate(self) -> list[str]:
        for key in ("external_url", "runbook_base_url"):
            url = getattr(self, key)
            if url is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
                return [f"web.{key} {url!r}: expected an absolute http:// or https:// URL"]
        _host, sep, port = self.listen_address.rpartition(":")
        if not sep or not port.isdigit() or not (0 <= int(port) < 65536):
            return [f"web.listen_address {self.listen_address!r}: expected HOST:PORT"]
        return []


# Sections parsed by their owning module: key -> (module, function). The function takes
# (node, errors, loc, base_dir) and returns the parsed value (or MISSING).
SECTION_PARSERS: dict[str, tuple[str, str]] = {
    "checks": ("hostwarden.collectors.checks", "parse_checks"),
    "tickets": ("hostwarden.exporters.tickets.config", "parse_tickets"),
    "receiver": ("hostwarden.exporters.receiver", "parse_receiver"),
    "maintenance": ("hostwarden.agent.incidents.maintenance", "parse_maintenance"),
    "remediation": ("hostwarden.agent.core.remedy", "parse_remediation_settings"),
}

TOP_KEYS = ("global", "web", "collectors", "rule_files", *SECTION_PARSERS)


@dataclass
class AgentConfig:
    path: str
    global_: GlobalConfig
    web: WebConfig
    collectors: dict[str, Any]  # name -> that collector's Config instance (enabled ones and disabled)
    rule_files: list[str]  # resolved absolute paths (globs expanded)
    rule_file_patterns: list[str]
    sections: dict[str, Any]  # checks, tickets, receiver: whatever their parser returned
    raw: Any = None

    @property
    def state_dir(self) -> str:
        return self.global_.state_dir or paths.default_state_dir()

    @property
    def hostname(self) -> str:
        return self.global_.hostname or socket.gethostname()

    @property
    def external_labels(self) -> dict[str, str]:
        labels = {"host": self.hostname}
        labels.update(self.global_.external_labels)
        return labels

    @property
    def evaluation_interval(self) -> float:
        return float(self.global_.evaluation_interval or self.global_.interval)

    @property
    def checks(self) -> list[Any]:
        return self.sections.get("checks") or []

    @property
    def tickets(self) -> Any:
        return self.sections.get("tickets")

    @property
    def receiver(self) -> Any:
        return self.sections.get("receiver")

    @property
    def remediation(self) -> Any:
        from hostwarden.agent.core.remedy import RemediationSettings

        return self.sections.get("remediation") or RemediationSettings()


def _parse_section(key: str, node: Any, errors: Errors, loc: Loc, base_dir: str) -> Any:
    module, func = SECTION_PARSERS[key]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        errors.add(loc, f"section {key!r} is not supported by this build of hostwarden")
        return MISSING
    return getattr(mod, func)(node, errors, loc, base_dir)


def _parse_collectors(node: Any, errors: Errors, loc: Loc, state_dir: str) -> dict[str, Any]:
    from hostwarden.collectors import base

    reg = base.registry()
    out: dict[str, Any] = {}
    if node is None:
        node = {}
    if not isinstance(node, dict):
        errors.add(loc, f"collectors: expected a mapping of collector name to options, got {short(node)}")
        node = {}
    for name, opts in node.items():
        kloc = node.key_loc(name) if isinstance(node, LocDict) else loc
        if name not in reg:
            errors.add(kloc, f"unknown collector {name!r}" + did_you_mean(str(name), reg)
                       + f"; known: {', '.join(sorted(reg))}")
            continue
        vloc = node.value_loc(name) if isinstance(node, LocDict) else loc
        cfg = build(reg[name].Config, opts, errors, loc=vloc, path=f"collectors.{name}")
        if cfg is not MISSING:
            out[name] = cfg
    for name in base.DEFAULT_ENABLED:
        if name not in out and name in reg and name not in node:
            out[name] = reg[name].Config()
    # the textfile directory defaults to <state_dir>/textfile
    tf = out.get("textfile")
    if tf is not None and getattr(tf, "directory", "") in (None, ""):
        import dataclasses

        out["textfile"] = dataclasses.replace(tf, directory=os.path.join(state_dir, "textfile"))
    return out


def load_config(path: str) -> AgentConfig:
    """Load and validate; raise ConfigErrors listing every problem (YAML, keys, types, rule files)."""
    path = os.path.abspath(path)
    try:
        doc = load_yaml_file(path)
    except YAMLSourceError as e:
        raise ConfigErrors([_issue(e.loc, e.message)]) from None
    errors = Errors()
    root_loc = Loc(path, 1, 1)
    if doc is None:
        doc = LocDict()
        doc.loc, doc.key_locs, doc.value_locs = root_loc, {}, {}
    if not isinstance(doc, dict):
        raise ConfigErrors([_issue(root_loc, "the config file must be a YAML mapping")])
    for key in doc:
        if key not in TOP_KEYS:
            errors.add(doc.key_loc(key), f"unknown key {key!r}" + did_you_mean(str(key), TOP_KEYS))
    base_dir = os.path.dirname(path)
    g = build(GlobalConfig, doc.get("global"), errors, loc=doc.value_loc("global"), path="global")
    w = build(WebConfig, doc.get("web"), errors, loc=doc.value_loc("web"), path="web")
    g = g if g is not MISSING else GlobalConfig()
    w = w if w is not MISSING else WebConfig()
    state_dir = g.state_dir or paths.default_state_dir()
    cols = _parse_collectors(doc.get("collectors"), errors, doc.value_loc("collectors"), state_dir)
    patterns_node = doc.get("rule_files", [])
    patterns: list[str] = []
    files: list[str] = []
    if patterns_node is None:
        patterns_node = []
    if not isinstance(patterns_node, list) or not all(isinstance(p, str) for p in patterns_node):
        errors.add(doc.value_loc("rule_files"), "rule_files: expected a list of glob patterns")
    else:
        for i, pat in enumerate(patterns_node):
            full = pat if os.path.isabs(pat) else os.path.join(base_dir, pat)
            patterns.append(full)
            matched = sorted(glob.glob(full))
            if not matched and not glob.has_magic(full):
                errors.add(patterns_node.item_loc(i), f"rule file {pat!r} does not exist")
            files.extend(m for m in matched if m not in files)
    sections: dict[str, Any] = {}
    for key in SECTION_PARSERS:
        if key in doc:
            got = _parse_section(key, doc[key], errors, doc.value_loc(key), base_dir)
            if got is not MISSING:
                sections[key] = got
    if errors.issues:  # the rule files found so far travel along: check-config reports their problems too
        exc = ConfigErrors(errors.issues)
        exc.rule_files = list(files)  # type: ignore[attr-defined]
        exc.evaluation_interval = float(g.evaluation_interval or g.interval)  # type: ignore[attr-defined]
        raise exc
    return AgentConfig(path=path, global_=g, web=w, collectors=cols, rule_files=files,
                       rule_file_patterns=patterns, sections=sections, raw=doc)


def _issue(loc: Loc, message: str) -> Any:
    from hostwarden.agent.core.schema import Issue

    return Issue(loc, message)


__all__ = ["DEFAULT_LISTEN", "DEFAULT_PORT", "AgentConfig", "ConfigErrors", "Regex", "load_config"]


def tickets_config_of(config: AgentConfig) -> Any:
    """The `tickets:` section, or what an absent section means: the embedded `local` backend."""
    if config.tickets is not None:
        return config.tickets
    from hostwarden.agent.core.yamlsrc import load_yaml
    from hostwarden.exporters.tickets.config import parse_tickets

    errors = Errors()
    node = load_yaml("{}", config.path)
    parsed = parse_tickets(node, errors, node.loc, os.path.dirname(config.path))
    errors.raise_if_any()
    return parsed

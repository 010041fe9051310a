"""Declared remediation as data: the `remediate:` key of rules and checks, the global `remediation:` section.

    remediate:                        # a list of actions (all options default) ...
      - restart_unit: nginx.service
    remediate:                        # ... or a mapping with the options
      after: 2m                       # firing at least this long (no action on blips)
      severity: critical              # critical | any
      max: 3 within 30m               # attempts per alert within the window, then stop and escalate
      verify_within: 2m               # the alert must clear this long after an action, else the next one
      actions:
        - restart_unit: $labels.name  # also start_unit, reload_unit (systemd's D-Bus API)
        - run: [/usr/local/sbin/rotate-logs, --now]
          timeout: 30s
          user: www-data

Pure: parsing (problems go to the caller's `Errors` with file:line:col), the `$labels.x` placeholder
check and substitution, and the file-trust rule. Nothing here runs anything.

A placeholder is allowed only as the whole value of a unit position or of a `run:` argument after the
program; the label's value is used only when it fully matches a strict pattern (a systemd unit name, or
an absolute, normalised path), so a label set from a textfile or the receiver can never become an
option (`--foo`), a second command (`nginx.service; rm -rf /`) or a relative path (`../../etc/passwd`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hostwarden.agent.core.schema import Errors, did_you_mean, short
from hostwarden.agent.core.units import format_duration, parse_duration
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList

UNIT_ACTIONS = ("restart_unit", "start_unit", "reload_unit")
ACTION_KINDS = (*UNIT_ACTIONS, "run")
ACTION_OPTIONS = ("timeout", "user")
PLAN_KEYS = ("actions", "after", "severity", "max", "verify_within")
DEFAULT_AFTER = 120.0
DEFAULT_MAX = 3
DEFAULT_WITHIN = 1800.0
DEFAULT_VERIFY_WITHIN = 120.0
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0

PLACEHOLDER = re.compile(r"^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$")
# systemd.unit(5): ASCII letters, digits, ":-_.\" and "@", a known type suffix; never an option.
UNIT_NAME = re.compile(r"^(?!-)[A-Za-z0-9:_.\\@-]{1,240}\.(service|socket|target|timer|mount|automount|swap|path|"
                       r"slice|scope|device)$")
# absolute, normalised (no `.`/`..` components, no `//`), a conservative character set
SAFE_PATH = re.compile(r"^(/[A-Za-z0-9_@:+,=][A-Za-z0-9_@:+,=.-]*)+/?$|^/$")
_MAX = re.compile(r"^\s*(\d+)\s*(?:within\s+(\S+))?\s*$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")


@dataclass(frozen=True)
class Action:
    """One declared action: a unit job over D-Bus, or a program run without a shell."""

    kind: Literal["restart_unit", "start_unit", "reload_unit", "run"]
    unit: str = ""  # literal unit name or a `$labels.x` placeholder
    argv: tuple[str, ...] = ()
    user: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """As written: `restart_unit nginx.service`, `run /usr/local/sbin/rotate-logs --now`."""
        if self.kind == "run":
            return "run " + " ".join(self.argv) + (f" (as {self.user})" if self.user else "")
        return f"{self.kind} {self.unit}"


@dataclass(frozen=True)
class Plan:
    """A rule's or a check's `remediate:`: the actions in order, when and how often they may run."""

    actions: tuple[Action, ...]
    source: str  # file:line of the `remediate:` key
    file: str  # the file it was declared in (its ownership decides whether it may run)
    after: float = DEFAULT_AFTER
    severity: Literal["critical", "any"] = "critical"
    max_attempts: int = DEFAULT_MAX
    within: float = DEFAULT_WITHIN
    verify_within: float = DEFAULT_VERIFY_WITHIN

    def describe(self) -> str:
        return (f"after {format_duration(self.after)}, severity {self.severity}, max {self.max_attempts} within "
                f"{format_duration(self.within)}, verify within {format_duration(self.verify_within)}")


@dataclass(frozen=True)
class Step:
    """An action with its placeholders substituted: what the executor runs."""

    kind: str
    unit: str = ""
    argv: tuple[str, ...] = ()
    user: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        if self.kind == "run":
            return "run " + " ".join(self.argv) + (f" (as {self.user})" if self.user else "")
        return f"{self.kind} {self.unit}"


class Refused(Exception):
    """A placeholder's value does not match its pattern (or the label is missing): the action does not run."""


@dataclass(frozen=True)
class RemediationSettings:
    """The global `remediation:` section."""

    enabled: bool = True
    dry_run: bool = False  # record what would have run, run nothing (also `hostwarden run --dry-run`)


def parse_remediation_settings(node: Any, errors: Errors, loc: Loc, base_dir: str) -> Any:
    """The agent config's `remediation:` section (agent.config SECTION_PARSERS)."""
    from hostwarden.agent.core.schema import build

    return build(RemediationSettings, node, errors, loc=loc, path="remediation")


# -- placeholders ------------------------------------------------------------------------------------------

def substitute(action: Action, labels: Mapping[str, str]) -> Step:
    """The concrete step for an alert's labels; raises Refused (with the reason) for an unsafe value."""
    if action.kind == "run":
        argv = [action.argv[0]]
        for arg in action.argv[1:]:
            argv.append(_value(arg, labels, (UNIT_NAME, SAFE_PATH), "a unit name or an absolute path"))
        return Step("run", argv=tuple(argv), user=action.user, timeout=action.timeout)
    unit = _value(action.unit, labels, (UNIT_NAME,), "a systemd unit name")
    return Step(action.kind, unit=unit, timeout=action.timeout)


def _value(text: str, labels: Mapping[str, str], patterns: tuple[re.Pattern[str], ...], what: str) -> str:
    m = PLACEHOLDER.match(text)
    if m is None:
        return text
    name = m.group(1)
    if name not in labels:
        raise Refused(f"$labels.{name}: the alert has no label {name!r}")
    value = labels[name]
    if not any(p.fullmatch(value) for p in patterns) or ".." in value.split("/"):
        raise Refused(f"$labels.{name} = {short(value)} is not {what}")
    return value


def placeholders(action: Action) -> list[str]:
    values = action.argv[1:] if action.kind == "run" else (action.unit,)
    return [m.group(1) for v in values if (m := PLACEHOLDER.match(v))]


# -- trust -------------------------------------------------------------------------------------------------

def file_trust_problem(path: str, *, owner_uid: int = 0,
                       stat_fn: Callable[[str], os.stat_result] = os.stat) -> str | None:
    """Why actions declared in `path` must not run (None: they may): the file must be owned by
    `owner_uid` (root) and not group- or world-writable."""
    try:
        st = stat_fn(path)
    except OSError as e:
        return f"cannot stat {path}: {e.strerror or e}"
    if st.st_uid != owner_uid:
        return f"{path} is owned by uid {st.st_uid}, not by root (uid {owner_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


# -- parsing -----------------------------------------------------------------------------------------------

def parse_plan(node: Any, errors: Errors, loc: Loc, *, where: str = "remediate") -> Plan | None:
    """`remediate:` as a list of actions or a mapping with `actions:` and options; None after an error."""
    n_before = len(errors.issues)
    opts: dict[str, Any] = {}
    if isinstance(node, LocDict):
        for key in node:
            if key not in PLAN_KEYS:
                errors.add(node.key_loc(key), f"unknown key '{where}.{key}'" + did_you_mean(str(key), PLAN_KEYS))
        actions_node = node.get("actions")
        actions_loc = node.value_loc("actions") if "actions" in node else node.loc
        if actions_node is None:
            errors.add(node.loc, f"{where}: missing required key 'actions'")
        for key in ("after", "verify_within"):
            if key in node:
                try:
                    opts[key] = parse_duration(node[key])
                except ValueError as e:
                    errors.add(node.value_loc(key), f"{where}.{key}: {e}")
        if "severity" in node:
            if node["severity"] in ("critical", "any"):
                opts["severity"] = node["severity"]
            else:
                errors.add(node.value_loc("severity"), f"{where}.severity: must be 'critical' or 'any', got "
                                                       f"{short(node['severity'])}")
        if "max" in node:
            got = _parse_max(node["max"])
            if isinstance(got, str):
                errors.add(node.value_loc("max"), f"{where}.max: {got}")
            else:
                opts["max_attempts"], within = got
                if within is not None:
                    opts["within"] = within
        if opts.get("verify_within", 1.0) <= 0:
            errors.add(node.value_loc("verify_within"), f"{where}.verify_within: must be positive")
    elif isinstance(node, LocList):
        actions_node, actions_loc = node, loc
    else:
        errors.add(loc, f"{where}: expected a list of actions or a mapping with 'actions', got {short(node)}")
        return None
    actions: list[Action] = []
    if actions_node is not None:
        if not isinstance(actions_node, LocList) or not actions_node:
            errors.add(actions_loc, f"{where}: expected a non-empty list of actions, got {short(actions_node)}")
        else:
            for i, item in enumerate(actions_node):
                a = _parse_action(item, errors, actions_node.item_loc(i), f"{where}[{i}]")
                if a is not None:
                    actions.append(a)
    if len(errors.issues) != n_before:
        return None
    return Plan(actions=tuple(actions), source=f"{loc.file}:{loc.line}", file=loc.file, **opts)


def _parse_max(value: Any) -> tuple[int, float | None] | str:
    if isinstance(value, bool):
        return f"expected a count such as 3 or '3 within 30m', got {short(value)}"
    if isinstance(value, int):
        return (value, None) if value >= 1 else "must be at least 1"
    m = _MAX.match(str(value)) if isinstance(value, str) else None
    if m is None:
        return f"expected a count such as 3 or '3 within 30m', got {short(value)}"
    count = int(m.group(1))
    if count < 1:
        return "must be at least 1"
    if m.group(2) is None:
        return count, None
    try:
        within = parse_duration(m.group(2))
    except ValueError as e:
        return str(e)
    if within <= 0:
        return "the window must be positive"
    return count, within


def _parse_action(node: Any, errors: Errors, loc: Loc, where: str) -> Action | None:
    if not isinstance(node, LocDict):
        errors.add(loc, f"{where}: expected a mapping such as {{restart_unit: nginx.service}}, got {short(node)}")
        return None
    kinds = [k for k in node if k in ACTION_KINDS]
    ok = True
    for key in node:
        if key not in ACTION_KINDS and key not in ACTION_OPTIONS:
            errors.add(node.key_loc(key), f"unknown key '{where}.{key}'"
                       + did_you_mean(str(key), ACTION_KINDS + ACTION_OPTIONS))
            ok = False
    if len(kinds) != 1:
        errors.add(node.loc, f"{where}: exactly one of {', '.join(ACTION_KINDS)} is required")
        return None
    kind = kinds[0]
    value, vloc = node[kind], node.value_loc(kind)
    timeout = DEFAULT_TIMEOUT
    if "timeout" in node:
        try:
            timeout = parse_duration(node["timeout"])
        except ValueError as e:
            errors.add(node.value_loc("timeout"), f"{where}.timeout: {e}")
            ok = False
        else:
            if not 0 < timeout <= MAX_TIMEOUT:
                errors.add(node.value_loc("timeout"), f"{where}.timeout: must be between 0 and "
                                                      f"{format_duration(MAX_TIMEOUT)}")
                ok = False
    user = node.get("user")
    if "user" in node and (kind != "run" or not isinstance(user, str) or not USER_NAME.match(user)):
        errors.add(node.value_loc("user"), f"{where}.user: " + ("only a run: action runs as another user"
                                                                if kind != "run" else
                                                                f"expected a user name, got {short(user)}"))
        ok = False
    if kind == "run":
        argv = _parse_argv(value, errors, vloc, where)
        if argv is None or not ok:
            return None
        return Action("run", argv=argv, user=user, timeout=timeout)
    if not isinstance(value, str) or not (UNIT_NAME.fullmatch(value) or PLACEHOLDER.fullmatch(value)):
        errors.add(vloc, f"{where}.{kind}: expected a unit name such as nginx.service or a $labels.x placeholder, "
                         f"got {short(value)}")
        return None
    return Action(kind, unit=value, timeout=timeout) if ok else None  # type: ignore[arg-type]


def _parse_argv(value: Any, errors: Errors, loc: Loc, where: str) -> tuple[str, ...] | None:
    if not isinstance(value, LocList) or not value:
        errors.add(loc, f"{where}.run: expected an argv list such as [/usr/local/sbin/rotate-logs, --now] "
                        f"(no shell), got {short(value)}")
        return None
    argv: list[str] = []
    ok = True
    for i, arg in enumerate(value):
        if isinstance(arg, bool) or not isinstance(arg, str | int | float):
            errors.add(value.item_loc(i), f"{where}.run[{i}]: expected a string, got {short(arg)}")
            ok = False
            continue
        text = str(arg)
        if "\x00" in text:
            errors.add(value.item_loc(i), f"{where}.run[{i}]: NUL characters are not allowed")
            ok = False
        elif i == 0 and (not os.path.isabs(text) or "$" in text):
            errors.add(value.item_loc(i), f"{where}.run[0]: the program must be an absolute path (no "
                                          f"placeholders, no PATH lookup), got {short(text)}")
            ok = False
        elif i > 0 and "$labels" in text and not PLACEHOLDER.match(text):
            errors.add(value.item_loc(i), f"{where}.run[{i}]: a $labels.x placeholder must be the whole argument, "
                                          f"got {short(text)}")
            ok = False
        argv.append(text)
    return tuple(argv) if ok else None

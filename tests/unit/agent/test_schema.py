from __future__ import annotations

import typing
from dataclasses import dataclass, field

from hostwarden.agent.core.schema import MISSING, ConfigErrors, Duration, Errors, Regex, build
from hostwarden.agent.core.yamlsrc import load_yaml


@dataclass(frozen=True)
class Probe:
    address: str
    timeout: Duration = Duration(5)
    tags: dict[str, str] = field(default_factory=dict)
    mode: typing.Literal["a", "b"] = "a"
    pattern: Regex | None = None
    ports: list[int] = field(default_factory=list)


def _build(text: str) -> tuple[object, list[str]]:
    doc = load_yaml(text, "f.yaml")
    errors = Errors()
    got = build(Probe, doc, errors, loc=doc.loc, path="probe")
    return got, [str(i) for i in ConfigErrors(errors.issues).issues]


def test_build_valid_mapping_converts_types() -> None:
    got, problems = _build("address: a\ntimeout: 1m30s\ntags: {x: y}\nmode: b\npattern: '^x$'\nports: [1, 2]\n")
    assert problems == []
    assert got == Probe(address="a", timeout=Duration(90), tags={"x": "y"}, mode="b", pattern=Regex("^x$"),
                        ports=[1, 2])


def test_build_every_problem_reported_with_location() -> None:
    got, problems = _build("adress: 1\ntimeout: 5q\nmode: c\npattern: '('\nports: [1, x]\n")
    assert got is MISSING
    assert problems == [
        "f.yaml:1:1: unknown key 'probe.adress' (did you mean 'address'?)",
        "f.yaml:1:1: probe: missing required key 'address'",
        "f.yaml:2:10: probe.timeout: bad duration '5q': expected a number with a unit (ms, s, m, h, d, w, y), "
        "e.g. 5m, 1h30m",
        "f.yaml:3:7: probe.mode: must be one of 'a', 'b', got 'c'",
        "f.yaml:4:10: probe.pattern: invalid regular expression '(': missing ), unterminated subpattern at position 0",
        "f.yaml:5:12: probe.ports[1]: expected an integer, got 'x'",
    ]

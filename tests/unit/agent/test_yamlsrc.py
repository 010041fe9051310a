from __future__ import annotations

import pytest
from hostwarden.agent.core.yamlsrc import LocDict, YAMLSourceError, load_yaml


def test_load_yaml_nested_mapping_records_key_and_item_locations() -> None:
    doc = load_yaml("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert isinstance(doc, LocDict)
    assert str(doc.key_loc("b")) == "f.yaml:2:1"
    assert str(doc["b"].item_loc(1)) == "f.yaml:4:5"
    assert str(doc["b"][1].key_loc("c")) == "f.yaml:4:6"
    assert str(doc.value_loc("a")) == "f.yaml:1:4"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: 1\na: 2\n", "g.yaml:2:1", "duplicate key 'a' (first defined at line 1)"),
        ("a: b: c\n", "g.yaml:1:5", "mapping values are not allowed here"),
        ("a: [1, 2\n", "g.yaml:2:1", "expected ',' or ']'"),
    ],
)
def test_load_yaml_bad_document_raises_with_location(text: str, where: str, message: str) -> None:
    with pytest.raises(YAMLSourceError) as info:
        load_yaml(text, "g.yaml")
    assert str(info.value.loc) == where
    assert message in info.value.message

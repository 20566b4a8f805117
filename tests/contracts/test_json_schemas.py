"""contracts/catalog.py: every contract publishes a JSON Schema under its wire name."""

from __future__ import annotations

import json

import pytest

from contracts.catalog import CONTRACTS, json_schema


def test_the_catalog_names_every_contract_on_the_wire():
    """The catalog lists each message the mesh sends or accepts; only proposals are publishable from outside."""
    assert set(CONTRACTS) == {
        "release.proposed",
        "review.submitted",
        "round.decided",
        "round.deadline",
        "dead.letter",
        "service.decision_recorded",
        "service.risk_changed",
        "digest.published",
        "digest.delivered",
        "mesh.alert",
        "schedule.definition",
        "approval.requested",
        "approval.expiring",
        "approval.decided",
        "approval.verdict",
        "approval.timer",
        "audit.record",
    }
    assert [name for name, c in CONTRACTS.items() if c.publishable] == ["release.proposed"]


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_each_contract_has_a_json_schema_requiring_its_required_fields(name):
    """json_schema(name) is a JSON-serialisable object schema whose `required` covers the model's required fields."""
    schema = json_schema(name)
    model = CONTRACTS[name].model
    required = {field for field, info in model.model_fields.items() if info.is_required()}

    assert json.loads(json.dumps(schema)) == schema
    assert schema["type"] == "object"
    assert schema["$id"] == f"urn:agent-mesh:contract:{name}"
    assert schema["description"]
    assert set(model.model_fields) <= set(schema["properties"])
    assert required and required <= set(schema.get("required", []))


def test_the_release_proposed_schema_requires_exactly_the_release_identity():
    """An outside producer learns from the schema that release_id, service and version are required."""
    schema = json_schema("release.proposed")
    assert set(schema["required"]) == {"release_id", "service", "version"}
    assert schema["properties"]["release_id"]["minLength"] == 1
    assert schema["examples"][0]["release_id"] == "rel-42"


def test_an_unknown_contract_name_raises_key_error():
    """Asking for a contract that does not exist fails loudly."""
    with pytest.raises(KeyError):
        json_schema("release.approved")

"""contracts/releases.py: what a `release.proposed` body must hold, and what gets filled in."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from contracts.envelope import SCHEMA_VERSION
from contracts.releases import ReleaseProposed


def minimal_body(**overrides) -> dict:
    """The smallest body an outside producer (a CI pipeline) would send."""
    body = {
        "release_id": "rel-42",
        "service": "payments-api",
        "version": "2.4.0",
        "title": "Add refund endpoint",
        "description": "Adds POST /refunds.",
        "author": "dev@example.com",
        "changes": [{"path": "src/refunds.py", "diff": "+def refund(order_id):\n+    ..."}],
        "labels": ["backend"],
    }
    return {**body, **overrides}


def errors_at(caught: pytest.ExceptionInfo[ValidationError]) -> dict[tuple, str]:
    return {tuple(error["loc"]): error["type"] for error in caught.value.errors()}


def test_a_minimal_body_is_accepted_and_the_envelope_is_filled_in():
    """Without envelope fields, an event id, a timestamp, the schema version and the correlation id are filled."""
    proposal = ReleaseProposed.model_validate(minimal_body())
    assert proposal.release_id == "rel-42"
    assert proposal.changes[0].path == "src/refunds.py"
    assert proposal.changes[0].diff.startswith("+def refund")
    assert proposal.labels == ["backend"]
    assert proposal.correlation_id == "rel-42"
    assert proposal.event_id and proposal.event_id != ReleaseProposed.model_validate(minimal_body()).event_id
    assert isinstance(proposal.occurred_at, datetime) and proposal.occurred_at.tzinfo is not None
    assert proposal.schema_version == SCHEMA_VERSION
    assert proposal.causation_id is None
    assert proposal.producer == "external"


def test_only_release_id_service_and_version_are_required():
    """A body with just the three required fields validates, with empty defaults for the rest."""
    proposal = ReleaseProposed.model_validate({"release_id": "r", "service": "s", "version": "1"})
    assert (proposal.title, proposal.changes, proposal.labels) == ("", [], [])


def test_extra_fields_are_kept_on_the_release_and_on_each_change():
    """Fields the mesh does not know survive validation and serialisation."""
    body = minimal_body(ticket="OPS-7", changes=[{"path": "a.py", "diff": "", "mode": "100644"}])
    proposal = ReleaseProposed.model_validate(body)
    assert proposal.model_extra == {"ticket": "OPS-7"}
    assert proposal.changes[0].model_extra == {"mode": "100644"}
    dumped = proposal.model_dump()
    assert dumped["ticket"] == "OPS-7"
    assert dumped["changes"][0]["mode"] == "100644"


def test_a_given_correlation_id_is_kept():
    """A producer's own correlation id is not overwritten by the release id."""
    proposal = ReleaseProposed.model_validate(minimal_body(correlation_id="deploy-9"))
    assert proposal.correlation_id == "deploy-9"


def test_a_missing_release_id_is_rejected_naming_the_field():
    """Without release_id the body is invalid, and the error points at release_id."""
    body = minimal_body()
    del body["release_id"]
    with pytest.raises(ValidationError) as caught:
        ReleaseProposed.model_validate(body)
    assert errors_at(caught) == {("release_id",): "missing"}
    assert "release_id" in str(caught.value)


def test_a_change_without_a_path_is_rejected_naming_the_field():
    """A changes item with no path is invalid, and the error points at changes.0.path."""
    with pytest.raises(ValidationError) as caught:
        ReleaseProposed.model_validate(minimal_body(changes=[{"diff": "+x"}]))
    assert errors_at(caught) == {("changes", 0, "path"): "missing"}
    assert "changes.0.path" in str(caught.value)


@pytest.mark.parametrize("field", ["release_id", "service", "version"])
def test_an_empty_required_string_is_rejected(field):
    """Required identifiers may not be empty strings."""
    with pytest.raises(ValidationError) as caught:
        ReleaseProposed.model_validate(minimal_body(**{field: ""}))
    assert (field,) in errors_at(caught)


def test_an_empty_change_path_is_rejected():
    """A change's path may not be empty."""
    with pytest.raises(ValidationError) as caught:
        ReleaseProposed.model_validate(minimal_body(changes=[{"path": ""}]))
    assert ("changes", 0, "path") in errors_at(caught)

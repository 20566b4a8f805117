"""The A2A front door's pure parts, without a broker: a revision's state as an A2A task
(services/gateway/a2a/views.py), the proposal a message carries (proposals.py), what the handler
refuses before a task exists (handler.py) and the door's answers (mount.py). Over HTTP, with the
SDK's client, real services and a real nats-server: tests/e2e/test_gateway_a2a.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files

import pytest
from a2a.types.a2a_pb2 import Message, Part, TaskState
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from services.gateway.a2a.answers import answer_in
from services.gateway.a2a.mount import method_of, refusal
from services.gateway.a2a.proposals import proposal_in
from services.gateway.a2a.views import (
    AWAITING,
    DECIDED,
    OPEN,
    SUBMITTED,
    derive,
    events_of,
    new_task,
    revision_of,
)
from services.gateway.front import FlowEvent, Revision

REVISION = Revision("rel-42", "ab" * 32)
AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CLEAN = json.loads((files("contracts") / "samples" / "release_clean.json").read_text())


def created():
    message = Message(message_id="m-1", parts=[Part(text="hello")])
    return new_task(task_id="t-1", context_id="c-1", message=message, revision=REVISION, at=AT)


def decided(outcome: str) -> dict:
    return {
        "state": "decided",
        "outcome": {
            "release_id": "rel-42",
            "outcome": outcome,
            "reason": f"{outcome.capitalize()}: because.",
            "occurred_at": "2026-11-27T10:00:05+00:00",
            "reviews": [],
            "cost_usd": 0.0,
        },
    }


OPEN_ONE = {
    "state": "open",
    "expected": ["compliance", "security"],
    "reviews": [{"reviewer": "security", "verdict": "approve", "findings": 0, "event_id": "e1"}],
    "waiting_for": ["compliance"],
    "opened_at": "2026-11-27T10:00:01+00:00",
}


@pytest.mark.parametrize(
    ("status", "state", "version"),
    [
        ({"state": "submitted"}, TaskState.TASK_STATE_SUBMITTED, SUBMITTED),
        (OPEN_ONE, TaskState.TASK_STATE_WORKING, OPEN + 1),
        (decided("approved"), TaskState.TASK_STATE_COMPLETED, DECIDED),
        (decided("blocked"), TaskState.TASK_STATE_COMPLETED, DECIDED),
        (decided("escalated"), TaskState.TASK_STATE_INPUT_REQUIRED, DECIDED),
    ],
    ids=["submitted", "open", "approved", "blocked", "escalated"],
)
def test_a_task_is_in_the_state_of_its_revision(status, state, version):
    """Accepted is submitted, an open round working (its version counting the reviews in), an
    approved or blocked round completed and an escalated one input-required."""
    task, got = derive(created(), status)

    assert (task.status.state, got) == (state, version)
    assert task.status.message.parts[0].text


def test_a_decided_task_carries_the_whole_outcome_as_its_one_artifact():
    """The outcome artifact holds the RoundDecided JSON; the final status says its reason."""
    task, _ = derive(created(), decided("blocked"))

    (artifact,) = task.artifacts
    assert MessageToDict(artifact.parts[0].data) == decided("blocked")["outcome"]
    assert artifact.parts[0].media_type == "application/json"
    assert task.status.message.parts[0].text == "Blocked: because."
    assert task.status.timestamp.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)


def test_an_escalated_task_says_a_person_must_decide():
    """Input-required asks for no A2A input: its message says the decision is a person's."""
    task, _ = derive(created(), decided("escalated"))

    assert "A person must decide" in task.status.message.parts[0].text


def test_a_task_the_bus_no_longer_knows_is_as_it_was_stored():
    """Without a status (the revision expired from the bus) the stored task is answered as is."""
    stored = created()

    assert derive(stored, None) == (stored, SUBMITTED)


def test_a_task_carries_its_revision_and_its_status_url():
    """A new task is submitted, holds the caller's message, and names its revision (and the
    gateway's HTTP status URL for it) in its metadata."""
    task = created()

    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert [m.message_id for m in task.history] == ["m-1"]
    assert revision_of(task) == REVISION
    assert MessageToDict(task.metadata)["status_url"] == REVISION.path


def test_reviews_then_the_outcome_come_in_increasing_versions():
    """Each counted review is a working update one version on; the outcome is its artifact then
    the final status, both at the decided version, after any review."""
    task = created()
    reviews = [FlowEvent("review", str(n), {"reviewer": "security", "verdict": "approve"}) for n in (1, 2)]
    outcome = FlowEvent("outcome", "outcome", decided("approved")["outcome"])

    told = [e for flow in [*reviews, outcome] for e in events_of(flow, task)]

    assert [version for _, version in told] == [OPEN + 1, OPEN + 2, DECIDED, DECIDED]
    kinds = [type(event).__name__ for event, _ in told]
    assert kinds == [
        "TaskStatusUpdateEvent",
        "TaskStatusUpdateEvent",
        "TaskArtifactUpdateEvent",
        "TaskStatusUpdateEvent",
    ]
    assert told[-1][0].status.state == TaskState.TASK_STATE_COMPLETED
    assert all(event.task_id == "t-1" and event.context_id == "c-1" for event, _ in told)


def test_the_same_status_is_named_alike_on_every_replica():
    """A status message's id is the task's and the version's, so two derivations agree."""
    assert derive(created(), OPEN_ONE) == derive(created(), OPEN_ONE)


def data_part(body) -> Part:
    return Part(data=ParseDict(body, Value()), media_type="application/json")


def test_the_proposal_is_read_from_the_one_data_part():
    """A message with a text part and one data part holding the contract gives the proposal."""
    message = Message(parts=[Part(text="please review"), data_part(CLEAN)])

    assert proposal_in(message).release_id == "rel-42"


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ([Part(text=json.dumps(CLEAN))], "message.parts"),
        ([data_part(CLEAN), data_part(CLEAN)], "message.parts"),
        ([Part(data=ParseDict(CLEAN, Value()), media_type="text/csv")], "message.parts.mediaType"),
        ([data_part([CLEAN])], "message.parts.data"),
        ([data_part({**CLEAN, "service": None, "changes": "none"})], "service"),
    ],
    ids=["no-data-part", "two-data-parts", "not-json", "not-an-object", "bad-fields"],
)
def test_a_message_without_one_valid_proposal_is_invalid_params_naming_the_field(parts, field):
    """Anything but one JSON data part holding a valid contract is InvalidParamsError, whose
    data names each bad field."""
    with pytest.raises(InvalidParamsError) as refused:
        proposal_in(Message(parts=parts))

    assert field in [e["field"] for e in refused.value.data["errors"]]


def test_every_bad_field_of_the_contract_is_named():
    """Two bad fields are two entries, each with its message."""
    with pytest.raises(InvalidParamsError) as refused:
        proposal_in(Message(parts=[data_part({**CLEAN, "service": None, "changes": "none"})]))

    assert {e["field"] for e in refused.value.data["errors"]} == {"service", "changes"}


def test_an_answer_to_an_input_required_task_is_one_decision_data_part():
    """A follow-up message's data part `{decision, note}` is read as a person's decision."""
    answer = answer_in(Message(task_id="t-1", parts=[data_part({"decision": "approve", "note": "checked"})]))

    assert (answer.decision, answer.note) == ("approve", "checked")


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ([Part(text="approve")], "message.parts"),
        ([data_part({"decision": "maybe"})], "decision"),
        ([data_part({"decision": "approve", "by": "key:alice"})], "by"),
        ([data_part(CLEAN)], "release_id"),
    ],
    ids=["text-only", "unknown-decision", "extra-field", "a-proposal"],
)
def test_an_answer_that_is_not_a_decision_is_invalid_params_naming_the_field(parts, field):
    """Anything but one `{decision, note}` data part is InvalidParamsError (the decider is the
    caller, never a field of the message)."""
    with pytest.raises(InvalidParamsError) as refused:
        answer_in(Message(task_id="t-1", parts=parts))

    assert field in [e["field"] for e in refused.value.data["errors"]]


def test_a_task_awaiting_approval_is_input_required_and_says_how_to_answer():
    """A revision waiting for a person makes its task input-required, telling who may decide, by when and how."""
    approval = {
        "id": "rel-42.3812ed07d3c8",
        "reason": "compliance asked for a human.",
        "approvers": ["key:alice"],
        "needed": 1,
        "approved_by": [],
        "deadline": "2026-11-28T10:00:00+00:00",
        "fallback": "block",
        "links": {"page": "/approvals/rel-42.3812ed07d3c8", "decision": "/v1/approvals/rel-42.3812ed07d3c8/decision"},
    }
    status = {**REVISION.as_dict(), "state": "awaiting_approval", "approval": approval}

    task, version = derive(created(), status)
    ((event, event_version),) = events_of(FlowEvent("approval", "approval", approval), created())

    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED and version == AWAITING
    assert event.status.state == TaskState.TASK_STATE_INPUT_REQUIRED and event_version == AWAITING
    text = task.status.message.parts[0].text
    assert "key:alice" in text and '"decision"' in text and "/approvals/rel-42.3812ed07d3c8" in text


class Refused(Exception):
    def __init__(self, detail: str, **attributes) -> None:
        super().__init__(detail)
        self.detail = detail
        self.__dict__.update(attributes)


def test_an_authentication_failure_is_a_401_asking_for_a_bearer_credential():
    """A failure with only a detail is a 401 problem with WWW-Authenticate: Bearer."""
    response = refusal(Refused("send a credential"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert json.loads(response.body)["detail"] == "send a credential"


def test_a_refusal_keeps_its_own_status_and_headers():
    """A failure that says its status (the door's 429) is answered with it and its headers."""
    response = refusal(Refused("slow down", status=429, headers={"Retry-After": "3"}))

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("body", "method"),
    [(b'{"jsonrpc": "2.0", "method": "GetTask"}', "GetTask"), (b"{not json", None), (b"[1]", None)],
)
def test_the_method_is_read_from_the_body_when_there_is_one(body, method):
    """The door reads the JSON-RPC method to pick the scope; garbage has none."""
    assert method_of(body) == method

"""What an A2A task looks like, read off its revision: pure, no I/O, no clock.

A task's state is never stored; it is the state of its revision on the bus, as `Front.status`
and `Front.follow` tell it. Every replica derives the same task from the same revision:

    revision state            task state        version
    accepted, no round yet -> submitted         1
    round open, n reviews  -> working           2 + n
    awaiting approval      -> input-required    AWAITING (+ approvals taken): answered with a decision
    decided: approved      -> completed     \
    decided: blocked       -> completed      >  DECIDED, with the outcome (`RoundDecided`) as artifact
    decided: escalated     -> input-required/

The version orders what a watcher has seen (the SDK's `TaskVersion`): a subscriber that read
version v is sent only what comes after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from services.gateway.front import FlowEvent, Revision

SUBMITTED = 1
OPEN = 2  # plus the number of reviews counted
AWAITING = 900_000  # after any number of reviews: a person decides (plus the approvals taken)
DECIDED = 1_000_000  # after any number of reviews

OUTCOME_ARTIFACT = "outcome"
JSON = "application/json"

STATE_OF_OUTCOME = {
    "approved": TaskState.TASK_STATE_COMPLETED,
    "blocked": TaskState.TASK_STATE_COMPLETED,
    # A human must decide: the round is over, but the release is not settled.
    "escalated": TaskState.TASK_STATE_INPUT_REQUIRED,
}


def revision_metadata(revision: Revision) -> dict[str, str]:
    """What a task carries of its revision (its `metadata`): the same names as the gateway's
    HTTP status body, and that status URL."""
    return {**revision.as_dict(), "status_url": revision.path}


def revision_of(task: Task) -> Revision | None:
    """The revision a task follows, from its metadata; None for a task that never reached the bus."""
    fields = task.metadata.fields
    if "release_id" not in fields or "revision" not in fields:
        return None
    return Revision(fields["release_id"].string_value, fields["revision"].string_value)


def new_task(*, task_id: str, context_id: str, message: Message, revision: Revision, at: datetime) -> Task:
    """A task just accepted: the caller's message as its history, the revision as its metadata."""
    task = Task(id=task_id, context_id=context_id, history=[message])
    task.metadata.update(revision_metadata(revision))
    task.status.CopyFrom(submitted_status(task, at))
    return task


def derive(task: Task, status: dict[str, Any] | None) -> tuple[Task, int]:
    """The task as its revision's `status` (from `Front.status`) makes it, and its version. With no
    status (the revision is no longer known on the bus) the task is as it was stored."""
    if status is None:
        settled = task.status.state in (*STATE_OF_OUTCOME.values(), TaskState.TASK_STATE_FAILED)
        return task, DECIDED if settled else SUBMITTED
    derived = Task()
    derived.CopyFrom(task)
    if status["state"] == "decided" and status.get("outcome"):
        outcome = status["outcome"]
        derived.status.CopyFrom(decided_status(task, outcome))
        del derived.artifacts[:]
        derived.artifacts.append(outcome_artifact(outcome))
        return derived, DECIDED
    if status["state"] == "awaiting_approval" and status.get("approval"):
        approval = status["approval"]
        derived.status.CopyFrom(awaiting_status(task, approval))
        return derived, AWAITING + len(approval.get("approved_by", []))
    if status["state"] == "open":
        reviews = status.get("reviews", [])
        derived.status.CopyFrom(open_status(task, status))
        return derived, OPEN + len(reviews)
    return derived, SUBMITTED


def events_of(flow: FlowEvent, task: Task) -> list[tuple[TaskStatusUpdateEvent | TaskArtifactUpdateEvent, int]]:
    """The A2A events one thing that happened to the revision makes, each with its version: a
    counted review is a `working` status; the outcome is its artifact, then the final status."""
    if flow.kind == "approval":
        status = awaiting_status(task, flow.data)
        return [(_status_event(task, status), AWAITING + len(flow.data.get("approved_by", [])))]
    if flow.kind == "review":
        version = OPEN + int(flow.id)
        text = review_text(flow.data, int(flow.id))
        status = _status(task, TaskState.TASK_STATE_WORKING, text, version, flow.data.get("occurred_at"))
        return [(_status_event(task, status), version)]
    outcome = flow.data
    artifact = TaskArtifactUpdateEvent(
        task_id=task.id, context_id=task.context_id, artifact=outcome_artifact(outcome), last_chunk=True
    )
    return [(artifact, DECIDED), (_status_event(task, decided_status(task, outcome)), DECIDED)]


# --- statuses ---------------------------------------------------------------------------


def submitted_status(task: Task, at: datetime | str | None) -> TaskStatus:
    revision = revision_of(task)
    what = f"release {revision.release_id!r} (revision {revision.digest[:12]})" if revision else "the proposal"
    text = f"Accepted: {what} is on the bus; waiting for its review round to open."
    return _status(task, TaskState.TASK_STATE_SUBMITTED, text, SUBMITTED, at)


def open_status(task: Task, status: dict[str, Any]) -> TaskStatus:
    reviews = status.get("reviews", [])
    done = ", ".join(f"{r['reviewer']} {r['verdict']}" for r in reviews) or "none yet"
    waiting = ", ".join(status.get("waiting_for", [])) or "nobody"
    text = f"Under review by {', '.join(status.get('expected', []))}: reviews counted: {done}; waiting for {waiting}."
    return _status(task, TaskState.TASK_STATE_WORKING, text, OPEN + len(reviews), status.get("opened_at"))


def awaiting_status(task: Task, approval: dict[str, Any]) -> TaskStatus:
    """The reviewers escalated and a person must decide: how, and by when."""
    links = approval.get("links", {})
    who = ", ".join(approval.get("approvers", []))
    text = (
        f"A person must decide. {approval.get('reason', '')} Approval {approval.get('id')} needs "
        f"{approval.get('needed', 1)} approval(s) by {who} before {approval.get('deadline')} (then: "
        f"{approval.get('fallback', 'block')}). An approver answers this task with a message whose data part is "
        '{"decision": "approve" or "reject", "note": "..."} (scope approvals:decide), or decides at '
        f"{links.get('page')} (POST {links.get('decision')})."
    )
    return _status(task, TaskState.TASK_STATE_INPUT_REQUIRED, text, AWAITING, None)


def decided_status(task: Task, outcome: dict[str, Any]) -> TaskStatus:
    state = STATE_OF_OUTCOME.get(outcome.get("outcome", ""), TaskState.TASK_STATE_COMPLETED)
    text = outcome.get("reason") or f"The round decided: {outcome.get('outcome')}."
    if state == TaskState.TASK_STATE_INPUT_REQUIRED:
        text += (
            " A person must decide, outside this task: the mesh could not put it before an approver (none "
            "configured for it, or nobody decided by the approval deadline)."
        )
    return _status(task, state, text, DECIDED, outcome.get("occurred_at"))


def review_text(review: dict[str, Any], n: int) -> str:
    if "superseded" in review:
        return f"Review {n} was replaced by a stricter one from the same reviewer."
    findings = len(review.get("findings", []))
    return f"Review {n}: {review.get('reviewer')} says {review.get('verdict')} ({findings} finding(s))."


def outcome_artifact(outcome: dict[str, Any]) -> Artifact:
    """The round's outcome, the whole `RoundDecided` as JSON: the task's one artifact."""
    data = Value(struct_value=_struct(outcome))
    return Artifact(
        artifact_id=OUTCOME_ARTIFACT,
        name="round.decided",
        description=f"The outcome of release {outcome.get('release_id')!r}: {outcome.get('outcome')}.",
        parts=[Part(data=data, media_type=JSON)],
    )


def _status(task: Task, state: TaskState, text: str, version: int, at: datetime | str | None) -> TaskStatus:
    # The message id is the task's and the version's: every replica names the same status alike.
    message = Message(
        message_id=f"{task.id}.{version}",
        context_id=task.context_id,
        task_id=task.id,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
    )
    status = TaskStatus(state=state, message=message)
    if at:
        status.timestamp.CopyFrom(_timestamp(at))
    return status


def _status_event(task: Task, status: TaskStatus) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=status)


def _struct(data: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(data)
    return struct


def _timestamp(at: datetime | str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(at) if isinstance(at, str) else at)
    return stamp

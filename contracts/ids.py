"""Message ids (`Nats-Msg-Id`): deterministic, so a retried or redelivered publish is stored once.

Each id names what the message *is* — one proposal of one revision, one reviewer's review of
it, its deadline, its outcome, one dead-letter record, one replay of it — never when or by whom
it was sent. A revision is a release id plus the `content_digest` of what is proposed: changed
content is a new revision, with ids of its own, so the stream's dedupe never swallows it.
Every `Nats-Msg-Id` the mesh sets is built here.
"""

from __future__ import annotations

from contracts.deadletters import DeadLetter
from contracts.reviews import ReviewSubmitted
from contracts.subjects import subject_token


def proposal_msg_id(release_id: str, digest: str) -> str:
    return f"proposal:{subject_token(release_id)}:{digest}"


def review_msg_id(review: ReviewSubmitted) -> str:
    """The same for every redelivery of the proposal to the same reviewer, with the same verdict.

    The verdict is part of it: whoever squats the id of an approval (publishes first under it)
    cannot make the stream drop the reviewer's reject, and the coordinator refuses a review
    whose id does not name its own verdict.
    """
    return (
        f"review:{subject_token(review.release_id)}:{review.content_digest}:"
        f"{subject_token(review.reviewer)}:{review.verdict.value}"
    )


def deadline_msg_id(release_id: str, digest: str, at: str) -> str:
    """Carries the time: rescheduling to another moment is never mistaken for a duplicate."""
    return f"deadline:{subject_token(release_id)}:{digest}:{at}"


def outcome_msg_id(release_id: str, digest: str) -> str:
    return f"outcome:{subject_token(release_id)}:{digest}"


def dead_letter_msg_id(record: DeadLetter) -> str:
    """One record per original message and consumer, however often (and by whom) it is written.

    Also the name of the object holding an offloaded payload (`DeadLetter.payload_object`).
    """
    return f"dlq:{record.stream}:{record.stream_seq}:{record.consumer}"


def replay_msg_id(dead_letter_stream: str, seq: int) -> str:
    """A replay of dead-letter record `seq`: replaying it twice within the duplicate window stores it once."""
    return f"replay:{dead_letter_stream}:{seq}"


def admin_action_msg_id(action_id: str) -> str:
    """One operator action (`AdminAction.id`): a retried publish of it is stored once."""
    return f"admin:{action_id}"


def approval_decision_msg_id(decision_event_id: str) -> str:
    """One person's decision (`approval.decided`): a retried publish of it is stored once."""
    return f"decision:{decision_event_id}"


def approval_verdict_msg_id(decision_event_id: str) -> str:
    """The coordinator's answer to one decision: one per decision, however often it is handled."""
    return f"verdict:{decision_event_id}"


def approval_notice_msg_id(kind: str, release_id: str, digest: str) -> str:
    """`approval.requested` / `approval.expiring` of one revision: each sent once."""
    return f"approval-{kind}:{subject_token(release_id)}:{digest}"


def approval_timer_msg_id(kind: str, release_id: str, digest: str, at: str) -> str:
    """An approval's deadline (`expire`) or reminder (`remind`); carries the time, like a round deadline's."""
    return f"approval-timer:{kind}:{subject_token(release_id)}:{digest}:{at}"


def audit_msg_id(kind: str, key: str) -> str:
    """One audit record: `kind` and what it is about (a decision's event id, or a revision)."""
    return f"audit:{kind}:{key}"

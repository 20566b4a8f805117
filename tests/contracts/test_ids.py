"""contracts/ids.py: every `Nats-Msg-Id` the mesh sets, byte for byte as it has always been."""

from __future__ import annotations

from contracts.deadletters import DeadLetter
from contracts.ids import (
    dead_letter_msg_id,
    deadline_msg_id,
    outcome_msg_id,
    proposal_msg_id,
    replay_msg_id,
    review_msg_id,
)
from contracts.reviews import ReviewSubmitted

DIGEST = "3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a"


def dead_letter(**fields) -> DeadLetter:
    return DeadLetter(
        subject="mesh.release.proposed",
        payload="{}",
        error="bad",
        error_type="invalid",
        service="coordinator",
        **fields,
    )


def test_round_ids_name_the_release_and_revision():
    """Proposal, deadline and outcome ids: kind, release token, digest (and the deadline's moment)."""
    assert proposal_msg_id("rel-42", DIGEST) == f"proposal:rel-42:{DIGEST}"
    assert deadline_msg_id("rel-42", DIGEST, "2025-01-02T03:04:05.678Z") == (
        f"deadline:rel-42:{DIGEST}:2025-01-02T03:04:05.678Z"
    )
    assert outcome_msg_id("rel-42", DIGEST) == f"outcome:rel-42:{DIGEST}"


def test_an_unsafe_release_id_becomes_its_subject_token():
    """A release id with dots or spaces is written as its subject token, not verbatim."""
    assert proposal_msg_id("rel.4 2", "d") == "proposal:rel_4_2=54c54aefdc70:d"


def test_a_review_id_names_reviewer_and_verdict():
    """A review's id carries the reviewer and the verdict, after the release and digest."""
    review = ReviewSubmitted(
        release_id="rel-42",
        content_digest=DIGEST,
        reviewer="security",
        verdict="reject",
        confidence=0.9,
        rationale="A key is committed.",
        model="offline-rules",
    )
    assert review_msg_id(review) == f"review:rel-42:{DIGEST}:security:reject"


def test_a_dead_letter_id_names_stream_sequence_and_consumer():
    """One record per original message and consumer; a record with no source reads `None`."""
    assert dead_letter_msg_id(dead_letter(stream="MESH_EVENTS", stream_seq=42, consumer="coordinator")) == (
        "dlq:MESH_EVENTS:42:coordinator"
    )
    assert dead_letter_msg_id(dead_letter()) == "dlq:None:None:None"


def test_a_replay_id_names_the_dead_letter_stream_and_sequence():
    """Replaying dead letter 17 is always the same message, so a second replay is a duplicate."""
    assert replay_msg_id("MESH_DEAD_LETTERS", 17) == "replay:MESH_DEAD_LETTERS:17"

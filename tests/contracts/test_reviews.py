"""contracts/reviews.py: the bounds of a reviewer's decision."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.reviews import ReviewSubmitted, Verdict


def review_body(**overrides) -> dict:
    body = {
        "release_id": "rel-42",
        "reviewer": "security",
        "verdict": "reject",
        "confidence": 0.95,
        "rationale": "A live API key is committed.",
        "model": "offline-rules",
    }
    return {**body, **overrides}


def test_a_review_body_is_accepted_and_correlated_by_release():
    """A complete review validates, its verdict is typed and its correlation id is the release id."""
    review = ReviewSubmitted.model_validate(review_body())
    assert review.verdict is Verdict.REJECT
    assert review.correlation_id == "rel-42"
    assert review.tokens.total == 0


@pytest.mark.parametrize("confidence", [0.0, 0.5, 1.0])
def test_confidence_inside_zero_to_one_is_accepted(confidence):
    """Confidence may be anything from 0 to 1 inclusive."""
    assert ReviewSubmitted.model_validate(review_body(confidence=confidence)).confidence == confidence


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 95])
def test_confidence_outside_zero_to_one_is_rejected(confidence):
    """A confidence below 0 or above 1 (e.g. a percentage) is invalid, naming the field."""
    with pytest.raises(ValidationError) as caught:
        ReviewSubmitted.model_validate(review_body(confidence=confidence))
    assert [tuple(e["loc"]) for e in caught.value.errors()] == [("confidence",)]


@pytest.mark.parametrize("verdict", ["approve", "reject", "needs_human"])
def test_every_known_verdict_is_accepted(verdict):
    """approve, reject and needs_human are the verdicts."""
    assert ReviewSubmitted.model_validate(review_body(verdict=verdict)).verdict == Verdict(verdict)


@pytest.mark.parametrize("verdict", ["maybe", "APPROVE", "", "approved"])
def test_an_unknown_verdict_is_rejected(verdict):
    """Anything but the three verdicts, spelled exactly, is invalid, naming the field."""
    with pytest.raises(ValidationError) as caught:
        ReviewSubmitted.model_validate(review_body(verdict=verdict))
    assert [tuple(e["loc"]) for e in caught.value.errors()] == [("verdict",)]


def test_a_review_drops_unknown_fields_and_refuses_oversized_ids():
    """Nothing unknown rides along into rounds and outcomes; ids and names have sane bounds."""
    review = ReviewSubmitted.model_validate(review_body(padding="x" * 10_000))
    assert "padding" not in review.model_dump()
    for field, value in (
        ("reviewer", "s" * 101),
        ("model", "m" * 201),
        ("event_id", "e" * 257),
        ("content_digest", "d" * 65),
    ):
        with pytest.raises(ValidationError) as caught:
            ReviewSubmitted.model_validate(review_body(**{field: value}))
        assert field in str(caught.value)


def test_a_review_keeps_its_most_severe_findings_and_counts_the_rest():
    """Past MAX_FINDINGS the most severe are kept and `findings_omitted` says how many were cut."""
    from contracts.reviews import MAX_FINDINGS

    findings = [{"rule": "LOW001", "severity": "low", "message": "m"}] * 100 + [
        {"rule": "CRT001", "severity": "critical", "message": "m"}
    ]
    review = ReviewSubmitted.model_validate(review_body(findings=findings))
    assert len(review.findings) == MAX_FINDINGS and review.findings_omitted == 101 - MAX_FINDINGS
    assert review.findings[0].rule == "CRT001"

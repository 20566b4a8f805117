"""coordinator/rounds.py `claim_outcome`: one publisher per outcome, handed over only when it died."""

from __future__ import annotations

from datetime import timedelta

from coordinator.rounds import Round
from tests.coordinator.test_rounds import LATER, opened

LEASE = timedelta(seconds=35)


def decided() -> Round:
    round_ = opened()
    round_.expire(now=LATER)
    return round_


def test_an_undecided_round_has_no_outcome_to_claim():
    """Nobody can claim the publishing of an outcome that does not exist yet."""
    assert opened().claim_outcome("EVENTS:1", now=LATER, lease=LEASE) is False


def test_the_first_claimant_wins_and_a_second_is_refused_while_the_lease_runs():
    """The message that decided the round publishes; another replica's message does not."""
    round_ = decided()
    assert round_.claim_outcome("REVIEWS:7", now=LATER, lease=LEASE) is True
    assert round_.claim_outcome("DEADLINES:3", now=LATER + timedelta(seconds=34), lease=LEASE) is False
    assert round_.publisher == "REVIEWS:7"


def test_the_claimant_redelivered_after_a_crash_claims_again():
    """The same message, redelivered to any replica, keeps (and refreshes) its claim."""
    round_ = decided()
    round_.claim_outcome("REVIEWS:7", now=LATER, lease=LEASE)
    assert round_.claim_outcome("REVIEWS:7", now=LATER + timedelta(seconds=5), lease=LEASE) is True
    assert round_.publisher_since == LATER + timedelta(seconds=5)


def test_an_expired_claim_passes_to_the_next_handler():
    """A claim older than the lease (its holder died for good) passes to whoever asks next."""
    round_ = decided()
    round_.claim_outcome("REVIEWS:7", now=LATER, lease=LEASE)
    assert round_.claim_outcome("DEADLINES:3", now=LATER + LEASE, lease=LEASE) is True
    assert round_.publisher == "DEADLINES:3"


def test_a_published_outcome_cannot_be_claimed():
    """Once the outcome is marked published, nobody publishes it again."""
    round_ = decided()
    round_.claim_outcome("REVIEWS:7", now=LATER, lease=LEASE)
    round_.mark_published()
    assert round_.claim_outcome("REVIEWS:7", now=LATER, lease=LEASE) is False
    assert round_.claim_outcome("DEADLINES:3", now=LATER + LEASE * 2, lease=LEASE) is False


def test_rounds_stored_before_the_claim_existed_still_load():
    """A round written by an older coordinator (no publisher fields) validates, unclaimed."""
    stored = decided().model_dump(mode="json")
    del stored["publisher"], stored["publisher_since"]
    round_ = Round.model_validate(stored)
    assert round_.publisher is None and round_.claim_outcome("EVENTS:1", now=LATER, lease=LEASE) is True

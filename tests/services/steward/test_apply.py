"""services/steward/apply.py: what each event does to the steward's state, and what it publishes."""

from __future__ import annotations

import random
from collections import Counter

from contracts.outcomes import Outcome
from contracts.stewardship import DecisionRecorded, RiskLevel, ServiceRiskChanged
from services.steward.apply import apply_outcome, apply_proposal, apply_review, service_key
from services.steward.state import StewardState
from tests.services.steward.events import at, outcome, proposal, review

EVENTS, REVIEWS, OUTCOMES = "MESH_EVENTS", "MESH_REVIEWS", "MESH_OUTCOMES"


class Feed:
    """Applies events as the runtime would, each at the next position of its stream."""

    def __init__(self, state: StewardState | None = None) -> None:
        self.state = state or StewardState()
        self.seq: Counter[str] = Counter()
        self.published: list = []

    def _at(self, stream: str):
        self.seq[stream] += 1
        return at(stream, self.seq[stream])

    def propose(self, release: str, service: str = "payments-api") -> list:
        return self._keep(apply_proposal(self.state, proposal(release, service), self._at(EVENTS)))

    def review(self, release: str, *rules: str, **kwargs) -> list:
        return self._keep(apply_review(self.state, review(release, *rules, **kwargs), self._at(REVIEWS)))

    def decide(self, release: str, result: str = "approved", *rules: str, **kwargs) -> list:
        return self._keep(apply_outcome(self.state, outcome(release, result, *rules, **kwargs), self._at(OUTCOMES)))

    def release(self, release: str, result: str = "approved", *rules: str, service: str = "payments-api", **kw):
        """Proposed, reviewed, decided: one release's whole life."""
        self.propose(release, service)
        self.review(release, *rules)
        return self.decide(release, result, *rules, **kw)

    def _keep(self, published: list) -> list:
        self.published += published
        return published

    def record(self, service: str = "payments-api"):
        return self.state.services[service_key(service)]


def test_a_decided_release_is_recorded_in_its_service_and_published_to_the_history():
    """Proposal, review and outcome make one recent decision, one tally and one DecisionRecorded."""
    feed = Feed()
    feed.propose("rel-1")
    feed.review("rel-1", cost=0.25)
    (recorded,) = feed.decide("rel-1", "approved")

    record = feed.record()
    assert (record.proposed, record.reviews, record.cost_usd) == (1, 1, 0.25)
    assert [d.release_id for d in record.recent] == ["rel-1"]
    assert record.decided.approved == 1 and record.risk is RiskLevel.LOW
    assert isinstance(recorded, DecisionRecorded)
    assert (recorded.service, recorded.release_id, recorded.outcome) == ("payments-api", "rel-1", Outcome.APPROVED)
    assert recorded.event_id == "steward:decided:MESH_OUTCOMES:1"  # from the outcome's position


def test_a_block_raises_the_risk_and_publishes_one_risk_change():
    """A blocked release with a critical finding moves low -> medium, and says why."""
    feed = Feed()
    feed.release("rel-1", "approved")
    published = feed.release("rel-2", "blocked", "SEC001", critical=True)

    changes = [m for m in published if isinstance(m, ServiceRiskChanged)]
    assert len(changes) == 1
    change = changes[0]
    assert (change.previous, change.level) == (RiskLevel.LOW, RiskLevel.MEDIUM)
    assert change.release_id == "rel-2" and change.blocked == 1 and change.critical == 1
    assert "1 of the last 2 decisions had a critical finding" in change.reasons
    assert change.event_id == "steward:risk:MESH_OUTCOMES:2"
    assert feed.record().risk is RiskLevel.MEDIUM


def test_the_level_unchanged_publishes_no_risk_change():
    """Only a move of the level is an event: another approval at low publishes the history record alone."""
    feed = Feed()
    feed.release("rel-1")
    published = feed.release("rel-2")
    assert [type(m) for m in published] == [DecisionRecorded]


def test_two_critical_releases_make_a_service_high_and_approvals_bring_it_back_down():
    """high at the second critical finding; once both leave the window, low again — each move published."""
    feed = Feed()
    feed.release("rel-1", "blocked", "SEC001", critical=True)
    feed.release("rel-2", "blocked", "SEC001", critical=True)
    assert feed.record().risk is RiskLevel.HIGH
    for n in range(3, 23):
        feed.release(f"rel-{n}")
    levels = [(m.previous.value, m.level.value) for m in feed.published if isinstance(m, ServiceRiskChanged)]
    assert levels == [("low", "medium"), ("medium", "high"), ("high", "medium"), ("medium", "low")]


def test_the_same_revision_decided_twice_counts_once():
    """A second outcome of the same revision changes nothing and publishes nothing."""
    feed = Feed()
    feed.release("rel-1", "blocked")
    before = feed.state.model_copy(deep=True)
    assert feed.decide("rel-1", "blocked") == []
    assert feed.record().decided.total == 1
    assert feed.record().recent == before.services["payments-api"].recent


def test_an_escalation_stays_open_until_the_release_is_decided_again():
    """An escalated release is open; a later revision's approval closes it."""
    feed = Feed()
    feed.release("rel-1", "escalated")
    assert [e.release_id for e in feed.record().open_escalations] == ["rel-1"]
    feed.propose("rel-1")
    feed.decide("rel-1", "approved", digest="e" * 64)
    assert feed.record().open_escalations == []
    assert feed.record().decided.escalated == 1 and feed.record().decided.approved == 1


def test_findings_are_counted_once_per_review_by_rule():
    """A review naming SEC001 twice counts it once; each review counts."""
    feed = Feed()
    feed.propose("rel-1")
    feed.review("rel-1", "SEC001", "SEC001", "SEC004")
    feed.review("rel-1", "SEC001", reviewer="compliance")
    assert feed.record().findings == {"SEC001": 2, "SEC004": 1}


def test_services_are_kept_apart():
    """Each service has its own record; a release is counted in its own service only."""
    feed = Feed()
    feed.release("rel-1", "blocked", service="payments-api")
    feed.release("rel-2", "approved", service="search")
    assert feed.record("payments-api").decided.blocked == 1
    assert feed.record("search").decided.approved == 1 and feed.record("search").decided.blocked == 0


def test_a_service_with_an_unsafe_name_is_keyed_by_its_subject_token():
    """`payments.api` is one service whose key is a single safe token."""
    feed = Feed()
    feed.release("rel-1", service="payments.api")
    (key,) = feed.state.services
    assert key == service_key("payments.api") and "." not in key
    assert feed.state.services[key].name == "payments.api"


def test_an_outcome_ahead_of_its_proposal_waits_and_is_applied_when_it_comes():
    """Streams are followed apart: an outcome and a review that arrive first are applied with the
    proposal, publishing under the outcome's own position."""
    feed = Feed()
    assert feed.decide("rel-1", "blocked", "SEC001") == []
    assert feed.review("rel-1", "SEC001", cost=0.5) == []
    assert len(feed.state.pending) == 2 and feed.state.services == {}

    published = feed.propose("rel-1")
    assert feed.state.pending == []
    assert feed.record().decided.blocked == 1 and feed.record().cost_usd == 0.5
    assert [m.event_id for m in published] == ["steward:decided:MESH_OUTCOMES:1", "steward:risk:MESH_OUTCOMES:1"]


def test_the_order_of_streams_does_not_change_what_is_known():
    """Proposals first or outcomes first, the services' records end the same."""
    in_order, outcomes_first = Feed(), Feed()
    releases = [(f"rel-{n}", ("approved", "blocked", "escalated")[n % 3]) for n in range(12)]
    for release, result in releases:
        in_order.release(release, result, "SEC001")
    for release, result in releases:
        outcomes_first.decide(release, result, "SEC001")
        outcomes_first.review(release, "SEC001")
    for release, _ in releases:
        outcomes_first.propose(release)

    assert outcomes_first.state.pending == []
    assert outcomes_first.state == in_order.state


def test_applying_the_same_events_again_gives_the_same_state_and_the_same_messages():
    """Deterministic: a replay from the streams reproduces the state and every id it publishes."""
    first, second = Feed(), Feed()
    for feed in (first, second):
        for n in range(30):
            feed.release(f"rel-{n}", ("approved", "blocked", "escalated")[n % 3], "SEC001", critical=n % 7 == 0)
    assert first.state == second.state
    assert [m.model_dump_json() for m in first.published] == [m.model_dump_json() for m in second.published]


def test_a_state_restored_from_its_checkpoint_goes_on_as_if_never_stopped():
    """Checkpoint (JSON) half-way, restore, apply the rest: the same state as applying all at once."""
    straight, restarted = Feed(), Feed()
    for n in range(20):
        straight.release(f"rel-{n}", ("approved", "blocked")[n % 2], f"R{n % 5}")
    for n in range(10):
        restarted.release(f"rel-{n}", ("approved", "blocked")[n % 2], f"R{n % 5}")
    restored = Feed(StewardState.model_validate_json(restarted.state.model_dump_json()))
    restored.seq = restarted.seq
    for n in range(10, 20):
        restored.release(f"rel-{n}", ("approved", "blocked")[n % 2], f"R{n % 5}")
    assert restored.state == straight.state


def test_as_of_and_applied_follow_every_event():
    """The state says how many events it holds and the stream time of the last."""
    feed = Feed()
    feed.release("rel-1")
    assert feed.state.applied == 3
    assert feed.state.as_of == at(OUTCOMES, 1).time


def test_any_interleaving_of_the_three_streams_ends_in_the_same_state():
    """After a restart the streams are read apart, in any interleaving (each in its own order):
    whatever the interleaving, the same events give the same state."""
    streams: dict[str, list] = {EVENTS: [], REVIEWS: [], OUTCOMES: []}
    for n in range(40):
        release, service = f"rel-{n % 30}", f"svc-{n % 3}"  # ten releases come back as a second revision
        result = ("approved", "blocked", "escalated", "escalated")[n % 4]
        rules = (f"SEC{n % 7:03}",) if result != "approved" else ()
        streams[EVENTS].append(proposal(release, service))
        streams[REVIEWS].append(review(release, *rules, cost=0.01 * n))
        streams[OUTCOMES].append(outcome(release, result, *rules, critical=n % 5 == 0, digest=f"{n:02}" * 32, seq=n))
    apply = {EVENTS: apply_proposal, REVIEWS: apply_review, OUTCOMES: apply_outcome}

    def run(rng: random.Random | None) -> StewardState:
        state, cursor = StewardState(), dict.fromkeys(streams, 0)
        while any(cursor[s] < len(streams[s]) for s in streams):
            left = [s for s in streams if cursor[s] < len(streams[s])]
            stream = rng.choice(left) if rng else left[0]  # None: every proposal first
            event = streams[stream][cursor[stream]]
            cursor[stream] += 1
            apply[stream](state, event, at(stream, cursor[stream]))
        return state

    expected = run(None)
    assert sum(r.decided.total for r in expected.services.values()) == 40 and expected.pending == []
    for seed in range(50):
        assert run(random.Random(seed)) == expected, f"seed {seed}"

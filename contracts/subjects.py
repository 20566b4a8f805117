"""Every subject, stream and bucket name, in one place.

All names hang off one namespace (`MESH_NAMESPACE`, default `mesh`) so several meshes, or
several test runs, share one NATS server without seeing each other's traffic.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """A single, safe subject token for an id (release ids may hold dots or spaces).

    Ids that are already safe stay readable; anything else becomes a readable prefix, `=`,
    and a hash. A safe id never contains `=`, so two different ids never share a token.
    """
    if value and not _UNSAFE.search(value) and len(value) <= 64:
        return value
    readable = _UNSAFE.sub("_", value)[:40]
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"{readable}={digest}"


@dataclass(frozen=True)
class Subjects:
    """Names for one namespace: `Subjects("mesh").release_proposed == "mesh.events.release.proposed"`."""

    namespace: str = "mesh"

    # events from other systems
    @property
    def events(self) -> str:
        return f"{self.namespace}.events.>"

    @property
    def release_proposed(self) -> str:
        return f"{self.namespace}.events.release.proposed"

    # reviews
    @property
    def reviews(self) -> str:
        return f"{self.namespace}.reviews.>"

    def review_submitted(self, reviewer: str) -> str:
        return f"{self.namespace}.reviews.release.{subject_token(reviewer)}"

    # outcomes
    @property
    def outcomes(self) -> str:
        return f"{self.namespace}.outcomes.>"

    def round_decided(self, release_id: str, digest: str) -> str:
        """Where the outcome of one revision goes; `outcomes_of` covers every revision of a release."""
        return f"{self.namespace}.outcomes.release.{subject_token(release_id)}.{subject_token(digest)}"

    def outcomes_of(self, release_id: str) -> str:
        return f"{self.namespace}.outcomes.release.{subject_token(release_id)}.*"

    @property
    def rounds_decided(self) -> str:
        return f"{self.namespace}.outcomes.release.*.*"

    # deadlines: the schedule lives on one subject, the server fires it onto another
    @property
    def deadlines(self) -> str:
        return f"{self.namespace}.deadlines.>"

    def deadline_schedule(self, release_id: str, digest: str) -> str:
        return f"{self.namespace}.deadlines.schedule.{subject_token(release_id)}.{subject_token(digest)}"

    @property
    def deadline_schedules(self) -> str:
        return f"{self.namespace}.deadlines.schedule.*.*"

    def deadline_fired(self, release_id: str, digest: str) -> str:
        return f"{self.namespace}.deadlines.fired.{subject_token(release_id)}.{subject_token(digest)}"

    @property
    def deadlines_fired(self) -> str:
        return f"{self.namespace}.deadlines.fired.*.*"

    # agents' schedules (bus/scheduling): one schedule per subject, fired by the server onto another
    @property
    def schedules(self) -> str:
        return f"{self.namespace}.schedules.>"

    def schedule_definition(self, agent: str, schedule: str) -> str:
        """Where an agent's schedule lives: one per subject, replaced by publishing again."""
        return f"{self.namespace}.schedules.def.{subject_token(agent)}.{subject_token(schedule)}"

    @property
    def schedule_definitions(self) -> str:
        return f"{self.namespace}.schedules.def.*.*"

    def schedule_tick(self, agent: str, schedule: str) -> str:
        """Where the server fires an agent's schedule (and `mesh schedule trigger` fires it now)."""
        return f"{self.namespace}.schedules.tick.{subject_token(agent)}.{subject_token(schedule)}"

    @property
    def schedule_ticks(self) -> str:
        return f"{self.namespace}.schedules.tick.*.*"

    @property
    def schedules_stream(self) -> str:
        return self.stream("schedules")

    @property
    def schedules_bucket(self) -> str:
        """Schedules' state: each tick's handling (with a TTL), each schedule's last result, pauses."""
        return f"{_UNSAFE.sub('_', self.namespace)}_schedules"

    # dead letters
    @property
    def dead_letters(self) -> str:
        return f"{self.namespace}.deadletter.>"

    def dead_letter(self, service: str) -> str:
        return f"{self.namespace}.deadletter.{subject_token(service)}"

    # the steward's long-term history: each decided release and each risk change, per service
    @property
    def history(self) -> str:
        return f"{self.namespace}.history.>"

    def decision_recorded(self, service: str) -> str:
        return f"{self.namespace}.history.decided.{subject_token(service)}"

    @property
    def decisions_recorded(self) -> str:
        return f"{self.namespace}.history.decided.*"

    def risk_changed(self, service: str) -> str:
        return f"{self.namespace}.history.risk.{subject_token(service)}"

    @property
    def risks_changed(self) -> str:
        return f"{self.namespace}.history.risk.*"

    @property
    def history_stream(self) -> str:
        return self.stream("history")

    # the digest agent's digests, and one delivery record per tick (services/digest)
    @property
    def digests(self) -> str:
        return f"{self.namespace}.digests.>"

    @property
    def digest_published(self) -> str:
        return f"{self.namespace}.digests.published"

    def digest_delivered(self, tick_id: str) -> str:
        """The delivery record of one tick's digest: a redelivered tick finds it here."""
        return f"{self.namespace}.digests.delivered.{subject_token(tick_id)}"

    @property
    def digests_delivered(self) -> str:
        return f"{self.namespace}.digests.delivered.*"

    @property
    def digests_stream(self) -> str:
        return self.stream("digests")

    # the watch agent's alerts, one subject per kind of problem (services/watch)
    @property
    def alerts(self) -> str:
        return f"{self.namespace}.alerts.>"

    def alert(self, kind: str) -> str:
        return f"{self.namespace}.alerts.{subject_token(kind)}"

    @property
    def alerts_raised(self) -> str:
        return f"{self.namespace}.alerts.*"

    @property
    def alerts_stream(self) -> str:
        return self.stream("alerts")

    # the steward answers requests for a service's recent history (core NATS request-reply, not stored)
    def steward_history(self, service: str) -> str:
        return f"{self.namespace}.steward.history.{subject_token(service)}"

    @property
    def steward_history_requests(self) -> str:
        return f"{self.namespace}.steward.history.*"

    # operator controls: core NATS requests to a service's instances (not stored)
    def control(self, agent: str) -> str:
        """Where an agent's instances listen for operator controls (`….control.<agent>.drain`)."""
        return f"{self.namespace}.control.{subject_token(agent)}"

    # the audit trail of operator actions (pause, resume, drain), one stream
    @property
    def admin_actions(self) -> str:
        return f"{self.namespace}.admin.>"

    def admin_action(self, action: str, agent: str) -> str:
        return f"{self.namespace}.admin.{subject_token(action)}.{subject_token(agent)}"

    def admin_actions_on(self, agent: str) -> str:
        """Every action on one agent (`….admin.*.<agent>`)."""
        return f"{self.namespace}.admin.*.{subject_token(agent)}"

    @property
    def admin_stream(self) -> str:
        return self.stream("admin")

    # recent spans, kept by `mesh up`'s trace store for `mesh trace` (an operator's stream:
    # services export spans over OTLP/HTTP and never touch it)
    @property
    def traces(self) -> str:
        return f"{self.namespace}.traces.>"

    def trace_spans(self, trace_id: str) -> str:
        """The spans of one trace (hex trace id), a message per exported batch."""
        return f"{self.namespace}.traces.spans.{subject_token(trace_id)}"

    def trace_index(self, release_id: str) -> str:
        """One message per (revision, trace) of a release: how `mesh trace RELEASE` finds its traces."""
        return f"{self.namespace}.traces.release.{subject_token(release_id)}"

    @property
    def traces_stream(self) -> str:
        return self.stream("traces")

    # human approval of escalated releases (contracts/approvals.py): decisions by channel, the
    # coordinator's verdicts, notices, and the approval deadline's server-side timers
    @property
    def approvals(self) -> str:
        return f"{self.namespace}.approvals.>"

    def approval_decided(self, channel: str, release_id: str) -> str:
        """Where `channel` (`gateway` or `operator`) publishes a person's decision on a release."""
        return f"{self.namespace}.approvals.decided.{subject_token(channel)}.{subject_token(release_id)}"

    def approval_decisions_via(self, channel: str) -> str:
        return f"{self.namespace}.approvals.decided.{subject_token(channel)}.*"

    @property
    def approval_decisions(self) -> str:
        return f"{self.namespace}.approvals.decided.*.*"

    def approval_verdict(self, decision_id: str) -> str:
        """The coordinator's answer to one decision (by the decision's event id)."""
        return f"{self.namespace}.approvals.verdict.{subject_token(decision_id)}"

    @property
    def approval_verdicts(self) -> str:
        return f"{self.namespace}.approvals.verdict.*"

    def approval_requested(self, release_id: str) -> str:
        return f"{self.namespace}.approvals.requested.{subject_token(release_id)}"

    @property
    def approvals_requested(self) -> str:
        return f"{self.namespace}.approvals.requested.*"

    def approval_expiring(self, release_id: str) -> str:
        return f"{self.namespace}.approvals.expiring.{subject_token(release_id)}"

    @property
    def approvals_expiring(self) -> str:
        return f"{self.namespace}.approvals.expiring.*"

    def approval_timer_schedule(self, kind: str, release_id: str, digest: str) -> str:
        """One schedule per approval and kind (`expire`, `remind`), fired onto `approval_timer_fired`."""
        return f"{self.namespace}.approvals.timer.schedule.{kind}.{subject_token(release_id)}.{subject_token(digest)}"

    @property
    def approval_timer_schedules(self) -> str:
        return f"{self.namespace}.approvals.timer.schedule.*.*.*"

    def approval_timer_fired(self, kind: str, release_id: str, digest: str) -> str:
        return f"{self.namespace}.approvals.timer.fired.{kind}.{subject_token(release_id)}.{subject_token(digest)}"

    @property
    def approval_timers_fired(self) -> str:
        return f"{self.namespace}.approvals.timer.fired.*.*.*"

    @property
    def approvals_stream(self) -> str:
        return self.stream("approvals")

    @property
    def approvals_bucket(self) -> str:
        """One key per approval (its id): the approval as people see it (`ApprovalView`)."""
        return f"{_UNSAFE.sub('_', self.namespace)}_approvals"

    # the audit trail of approvals: immutable records (contracts/audit.py)
    @property
    def audit(self) -> str:
        return f"{self.namespace}.audit.>"

    def audit_record(self, kind: str, release_id: str) -> str:
        return f"{self.namespace}.audit.approval.{subject_token(kind)}.{subject_token(release_id)}"

    @property
    def audit_records(self) -> str:
        return f"{self.namespace}.audit.approval.*.*"

    def audit_of(self, release_id: str) -> str:
        """Every record about one release."""
        return f"{self.namespace}.audit.approval.*.{subject_token(release_id)}"

    @property
    def audit_stream(self) -> str:
        return self.stream("audit")

    # streams and buckets
    def stream_for(self, subject: str) -> str:
        """The stream that stores `subject` (`mesh.reviews.release.x` -> `MESH_REVIEWS`)."""
        prefix, _, rest = subject.partition(".")
        kind = rest.split(".", 1)[0]
        if prefix != self.namespace or kind not in _STREAM_KINDS:
            raise ValueError(f"subject {subject!r} is not stored by any stream of namespace {self.namespace!r}")
        return self.stream(kind)

    def stream(self, purpose: str) -> str:
        return f"{_stream_safe(self.namespace)}_{purpose.upper()}"

    @property
    def events_stream(self) -> str:
        return self.stream("events")

    @property
    def reviews_stream(self) -> str:
        return self.stream("reviews")

    @property
    def outcomes_stream(self) -> str:
        return self.stream("outcomes")

    @property
    def deadlines_stream(self) -> str:
        return self.stream("deadlines")

    @property
    def dead_letter_stream(self) -> str:
        return self.stream("deadletter")

    # the server's own advisories about our consumers (kept in a stream until handled)
    @property
    def advisories_stream(self) -> str:
        return self.stream("advisories")

    @property
    def data_streams(self) -> list[str]:
        """Every stream that holds the namespace's messages (not the advisories)."""
        return [self.stream(kind) for kind in _STREAM_KINDS]

    @staticmethod
    def max_deliveries_advisory(stream: str, consumer: str = "*") -> str:
        """Where the server says a consumer gave up on a message (delivered max_deliver times, never acked)."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"

    @property
    def rounds_bucket(self) -> str:
        return f"{_UNSAFE.sub('_', self.namespace)}_rounds"

    @property
    def agents_bucket(self) -> str:
        """Agent cards, one key per agent name."""
        return f"{_UNSAFE.sub('_', self.namespace)}_agents"

    @property
    def instances_bucket(self) -> str:
        """Live instances, one key per `<agent>.<instance id>`, each with a TTL."""
        return f"{_UNSAFE.sub('_', self.namespace)}_instances"

    @property
    def gateway_bucket(self) -> str:
        """The gateway's shared state, one key per fact with its own TTL: idempotency keys, webhook ids
        seen, rate-limit windows, held-request leases, A2A tasks (services/gateway)."""
        return f"{_UNSAFE.sub('_', self.namespace)}_gateway"

    @property
    def daemons_bucket(self) -> str:
        """Daemon agents' state (bus/stateful): per agent, its lease (`<agent>.lease`, with a TTL),
        its checkpoint (`<agent>.checkpoint`) and the chunks of a checkpoint too large for one value."""
        return f"{_UNSAFE.sub('_', self.namespace)}_daemons"

    @property
    def dead_letter_payloads_bucket(self) -> str:
        """Object store for payloads too large to travel inside their dead-letter record."""
        return f"{_UNSAFE.sub('_', self.namespace)}_deadletter_payloads"


_STREAM_KINDS = (
    "events",
    "reviews",
    "outcomes",
    "deadlines",
    "deadletter",
    "history",
    "digests",
    "alerts",
    "schedules",
    "approvals",
    "audit",
)
# How many leading tokens of each kind of subject name a kind of message, not one release or agent.
_FIXED_TOKENS = {
    "reviews": 3,
    "outcomes": 3,
    "deadlines": 3,
    "deadletter": 2,
    "admin": 2,
    "history": 3,
    "digests": 3,
    "schedules": 3,
    "approvals": 3,
    "audit": 4,
}


def subject_template(subject: str) -> str:
    """`subject` with its per-release and per-agent tokens as `*`: a name for a kind of message
    (`mesh.outcomes.release.rel-42.3812…` -> `mesh.outcomes.release.*.*`), for span names and
    metric labels, which must not grow with every release."""
    tokens = subject.split(".")
    fixed = _FIXED_TOKENS.get(tokens[1]) if len(tokens) > 1 else None
    if fixed is None or len(tokens) <= fixed:
        return subject
    return ".".join([*tokens[:fixed], *("*" * (len(tokens) - fixed))])


def _stream_safe(name: str) -> str:
    return _UNSAFE.sub("_", name).upper() if name else "MESH"

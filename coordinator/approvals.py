"""Human approval of an escalated round. Pure: no I/O, no clock, no broker.

When a round's policy concludes `escalated` (a reviewer answered needs_human, or a fallback
escalated) and approvers are configured, the round does not end: it waits for a person
(`RoundState.AWAITING_APPROVAL`), with an `Approval` on it. Only an escalation waits: a blocked
round is never put before a person, so no decision can turn it into an approval.

    pending --approve (enough distinct approvers)--> approved  outcome approved, decided by people
    pending --approve (1 of 2, two-person rule)----> pending
    pending --reject (any approver)----------------> rejected  outcome blocked
    pending --approval deadline, nobody decided----> expired   the fallback: blocked (or escalated)

Who may decide (`MESH_APPROVERS`), per group:

    default=key:alice,key:bob;label:pci=key:carol;critical=key:carol,key:dave

A `label:<name>` group applies to a release with that label; a severity group (`critical`,
`high`, …) to a release whose most severe finding is at least that severe, the most severe such
group only. The groups that apply replace `default`; when several apply, an approver must be in
every one of them (fail closed: a PCI release with a critical finding needs someone trusted
with both). Nobody left means nobody can decide: the round ends `escalated`, as it always did.

The two-person rule (`MESH_TWO_PERSON_RULE=critical,label:pci`, or `all`) asks for two
different approvers when a trigger matches; a single reject still blocks at once.

A decision is refused, and recorded with its reason, when its decider is not an approver (403),
decided before (409), or comes after the outcome or the approval deadline (409), or when there
is nothing to decide (404); a decision on a channel that may not speak for its decider (the
gateway for an `operator:` id, the operator for anyone else) is refused as not allowed.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, Field

from contracts.approvals import ApprovalDecided, RefusedDecision
from contracts.outcomes import ApprovalRecord, HumanDecision

SEVERITIES = ("critical", "high", "medium", "low", "info")  # most severe first
DEFAULT_GROUP = "default"
OPERATOR = "operator:"
CHANNELS = ("gateway", "operator")
MAX_REFUSED = 20  # refused decisions kept on a round; beyond that only counted


class ApproverGroupsError(ValueError):
    """`MESH_APPROVERS` or `MESH_TWO_PERSON_RULE` that does not parse."""


def parse_groups(text: str) -> dict[str, list[str]]:
    """`default=key:a,key:b;label:pci=key:c;critical=key:c` -> {group: [approver ids]}."""
    groups: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, ids = item.partition("=")
        name = name.strip().lower() if not name.strip().startswith("label:") else name.strip()
        if not sep or not name:
            raise ApproverGroupsError(f"approver group {item!r} should look like default=key:alice,key:bob")
        check_group_name(name)
        members = [member.strip() for member in ids.split(",") if member.strip()]
        if not members:
            raise ApproverGroupsError(f"approver group {name!r} names nobody; list ids such as key:alice")
        for member in members:
            if ":" not in member or any(c.isspace() for c in member):
                raise ApproverGroupsError(
                    f"approver {member!r} in group {name!r} is not an id: use key:<name>, jwt:<issuer>#<subject> "
                    "or operator:<name>"
                )
        groups.setdefault(name, [])
        groups[name] += [m for m in members if m not in groups[name]]
    return groups


def check_group_name(name: str) -> None:
    if name == DEFAULT_GROUP or name in SEVERITIES or (name.startswith("label:") and len(name) > len("label:")):
        return
    raise ApproverGroupsError(
        f"approver group {name!r}: use default, label:<label> or a severity ({', '.join(SEVERITIES)})"
    )


def check_trigger(trigger: str) -> None:
    """A two-person rule trigger: `all`, a severity, or `label:<name>`."""
    if trigger == "all" or trigger in SEVERITIES or (trigger.startswith("label:") and len(trigger) > len("label:")):
        return
    raise ApproverGroupsError(
        f"two-person rule {trigger!r}: use all, label:<label> or a severity ({', '.join(SEVERITIES)})"
    )


def at_least(severity: str | None, threshold: str) -> bool:
    """Whether a finding of `severity` is at least as severe as `threshold`."""
    return severity in SEVERITIES and SEVERITIES.index(severity) <= SEVERITIES.index(threshold)


class ApprovalRules(BaseModel):
    """The approval settings a round keeps from when it opened (as it keeps its policy)."""

    groups: dict[str, list[str]] = Field(default_factory=dict)
    two_person: list[str] = Field(default_factory=list)
    deadline_seconds: float = 24 * 3600.0
    fallback: str = "block"
    reminder: float = 0.8

    @classmethod
    def from_settings(cls, settings) -> ApprovalRules | None:
        """From the coordinator's settings; None when no approver group is configured."""
        groups = parse_groups(settings.approvers)
        if not groups:
            return None
        return cls(
            groups=groups,
            two_person=list(settings.two_person_rule),
            deadline_seconds=settings.approval_deadline_seconds,
            fallback=settings.approval_fallback,
            reminder=settings.approval_reminder,
        )

    def applying(self, labels: list[str], severity: str | None) -> list[str]:
        """The groups that apply to a release: its labels' and its severity's, else `default`."""
        names = [f"label:{label}" for label in labels if f"label:{label}" in self.groups]
        severe = [name for name in SEVERITIES if name in self.groups and at_least(severity, name)]
        names += severe[:1]  # the most severe group the release reaches
        if not names and DEFAULT_GROUP in self.groups:
            names = [DEFAULT_GROUP]
        return names

    def approvers_for(self, labels: list[str], severity: str | None) -> tuple[list[str], list[str]]:
        """(who may decide, the groups that said so): the members of every group that applies."""
        names = self.applying(labels, severity)
        if not names:
            return [], []
        allowed = list(self.groups[names[0]])
        for name in names[1:]:
            allowed = [member for member in allowed if member in self.groups[name]]
        return allowed, names

    def needed_for(self, labels: list[str], severity: str | None) -> int:
        """2 when a two-person trigger matches the release, else 1."""
        for trigger in self.two_person:
            if trigger == "all" or (trigger.startswith("label:") and trigger[len("label:") :] in labels):
                return 2
            if trigger in SEVERITIES and at_least(severity, trigger):
                return 2
        return 1


class Verdict(NamedTuple):
    """What became of one decision: taken or not, an HTTP-like status, and why."""

    accepted: bool
    status: int
    detail: str


class Approval(BaseModel):
    """The wait for a person, as the round stores it."""

    id: str
    requested_at: datetime
    deadline: datetime
    approvers: list[str]
    needed: int = 1
    groups: list[str] = Field(default_factory=list)  # the approver groups that applied
    fallback: str = "block"
    reason: str = ""  # why the reviewers escalated
    remind_at: datetime | None = None
    decisions: list[HumanDecision] = Field(default_factory=list)
    refused: list[RefusedDecision] = Field(default_factory=list)
    refused_overflow: int = 0
    reminded: bool = False
    expired: bool = False
    announced: bool = False  # its request is out: timers scheduled, notice and audit record published
    version: int = 1  # grows with every change: the newest view of it wins

    @property
    def approved_by(self) -> list[str]:
        return [d.who for d in self.decisions if d.decision == "approve"]

    @property
    def rejected_by(self) -> list[str]:
        return [d.who for d in self.decisions if d.decision == "reject"]

    @property
    def settled(self) -> bool:
        """Whether the decisions so far settle it: a reject, or enough approvals."""
        return bool(self.rejected_by) or len(self.approved_by) >= self.needed

    def record(self) -> ApprovalRecord:
        return ApprovalRecord(
            id=self.id,
            requested_at=self.requested_at,
            deadline=self.deadline,
            approvers=self.approvers,
            needed=self.needed,
            fallback=self.fallback,
            escalation_reason=self.reason,
            expired=self.expired,
        )

    def verdict_for(self, event_id: str) -> Verdict | None:
        """The verdict already given on a decision (a redelivery gets the same answer)."""
        for decision in self.decisions:
            if decision.event_id == event_id:
                return Verdict(True, 200 if self.settled else 202, _taken(decision, self))
        for refused in self.refused:
            if refused.event_id == event_id:
                return Verdict(False, refused.status, refused.reason)
        return None

    def take(self, event: ApprovalDecided, *, channel: str, at: datetime, pending: bool) -> Verdict:
        """Take `event` or refuse it (recorded either way). `pending`: the round still waits;
        `at`: when the bus stored the decision (a decision made in time counts, whenever it is handled)."""
        problem = self.problem(event, channel=channel, at=at, pending=pending)
        if problem is not None:
            self.refuse(event, at=at, status=problem.status, reason=problem.detail)
            return problem
        decision = HumanDecision(
            who=event.decider,
            when=at,
            decision=event.decision,
            note=event.note,
            via=event.via or channel,
            event_id=event.event_id,
        )
        self.decisions.append(decision)
        self.version += 1
        return Verdict(True, 200 if self.settled else 202, _taken(decision, self))

    def problem(self, event: ApprovalDecided, *, channel: str, at: datetime, pending: bool) -> Verdict | None:
        """Why `event` cannot be taken, or None."""
        who = event.decider
        if channel not in CHANNELS or (channel == "operator") != who.startswith(OPERATOR):
            speaks = "operators (operator:<name>)" if channel == "operator" else "its authenticated callers"
            return Verdict(False, 403, f"a decision on the {channel} channel may speak only for {speaks}, not {who}")
        if who not in self.approvers:
            return Verdict(
                False, 403, f"{who} may not decide approval {self.id}; its approvers: {', '.join(self.approvers)}"
            )
        if not pending:
            return Verdict(False, 409, f"approval {self.id} is settled already; a decision after it changes nothing")
        if at >= self.deadline:
            return Verdict(
                False, 409, f"approval {self.id} expired at {self.deadline.isoformat()}; its fallback applies"
            )
        earlier = next((d for d in self.decisions if d.who == who), None)
        if earlier is not None:
            return Verdict(
                False,
                409,
                f"{who} decided approval {self.id} already ({earlier.decision} at {earlier.when.isoformat()}); "
                "a second decision by the same person is refused",
            )
        return None

    def refuse(self, event: ApprovalDecided, *, at: datetime, status: int, reason: str) -> None:
        if len(self.refused) >= MAX_REFUSED:
            self.refused_overflow += 1
        else:
            self.refused.append(
                RefusedDecision(
                    who=event.decider,
                    when=at,
                    decision=event.decision,
                    reason=reason[:500],
                    status=status,
                    event_id=event.event_id,
                )
            )
        self.version += 1


def _taken(decision: HumanDecision, approval: Approval) -> str:
    if decision.decision == "reject":
        return f"{decision.who} rejected approval {approval.id}: the release is blocked"
    if approval.settled and not approval.rejected_by:
        return f"{decision.who} approved approval {approval.id}: the release is approved"
    if approval.rejected_by:
        return f"{decision.who} approved approval {approval.id}, which a reject had settled already"
    count = len(approval.approved_by)
    return (
        f"{decision.who} approved approval {approval.id} ({count} of {approval.needed}); the two-person rule "
        "needs another, different approver"
    )


def joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

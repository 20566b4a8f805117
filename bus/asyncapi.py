"""One AsyncAPI 3.0 document for the whole mesh, generated from what its agents declare.

FastStream's own generator sees only FastStream subscribers, and an agent's consumers are
pull requests answered on inboxes of its own (bus/consuming.py): it would describe inboxes.
This one reads the agents' declarations instead — the subjects each consumes (with stream and
durable) and publishes, plus what the runtime adds to every agent (its dead letters, the
max-deliveries advisories it reads) — and lays them on the mesh's channels:

- a channel per kind of subject (`CHANNELS`), its variable tokens as address parameters;
- an operation per agent and channel it sends to or receives from, tagged with the agent
  (a receive names its durable as the NATS queue: the replicas share it), and per party
  outside the mesh that sends or receives there (other systems, the NATS server, operators);
- a message per channel: the contract's JSON Schema and the headers that matter, first of
  all `Nats-Msg-Id`, the key JetStream drops duplicates by.

A declared subject that lies on no channel is an error (add the channel here), so the document
cannot silently miss one. `mesh asyncapi` writes it; the registry serves it at `/asyncapi.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bus.card_builder import mesh_version, without_credentials
from bus.exhausted import MaxDeliveriesAdvisory
from bus.settings import BusSettings
from contracts.alerts import MeshAlert
from contracts.approvals import (
    ApprovalDecided,
    ApprovalExpiring,
    ApprovalRequested,
    ApprovalTimer,
    DecisionVerdict,
)
from contracts.audit import AuditRecord
from contracts.catalog import CONTRACTS
from contracts.deadletters import DeadLetter
from contracts.deadlines import RoundDeadline
from contracts.digests import DigestDelivered, DigestPublished
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.schedules import ScheduleDefinition
from contracts.stewardship import DecisionRecorded, ServiceRiskChanged
from contracts.subjects import Subjects

VERSION = "3.0.0"
OUTSIDE = "outside"  # systems outside the mesh: CI, release tools, `mesh publish`, dashboards
SERVER = "nats-server"
OPERATORS = "operators"
PARTIES = {
    OUTSIDE: "Systems outside the mesh (CI, release tooling, `mesh publish`, `MeshClient`).",
    SERVER: "The NATS server itself: message schedules and JetStream advisories.",
    OPERATORS: "People and tools running the mesh (`mesh dlq`).",
}


def _msg_id(form: str, meaning: str) -> dict:
    return {
        "type": "string",
        "description": f"Deduplication key, `{form}`: {meaning} JetStream stores one message per id "
        "within the stream's duplicate window (`MESH_DUPLICATE_WINDOW_SECONDS`).",
    }


CONTENT_TYPE = {"type": "string", "const": "application/json"}
TRACEPARENT = {
    "type": "string",
    "description": "W3C trace context of the flow, when tracing is on (OpenTelemetry).",
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
}


@dataclass(frozen=True)
class Channel:
    """One kind of subject: its address (tokens in braces vary), its message and who else uses it."""

    id: str
    address: str
    model: type[BaseModel]
    description: str
    parameters: dict[str, str] = field(default_factory=dict)  # name -> description
    headers: dict[str, dict] = field(default_factory=dict)  # header -> JSON Schema
    required: tuple[str, ...] = ()  # headers every message carries
    sent_by: dict[str, str] = field(default_factory=dict)  # party outside the agents -> how
    received_by: dict[str, str] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        """The address as a NATS subject pattern (each parameter a `*`)."""
        return ".".join("*" if t.startswith("{") else t for t in self.address.split("."))


def _address(make: Callable[..., str], *names: str) -> str:
    """A subject built by `Subjects` with each named token left as a `{parameter}`."""
    address = make(*(f"__{n}__" for n in names))
    for n in names:
        address = address.replace(f"__{n}__", "{" + n + "}")
    return address


def channels(s: Subjects) -> list[Channel]:
    """Every channel of the mesh in namespace `s.namespace`."""
    release = "The release id, as a subject token (`subject_token` in contracts/subjects.py)."
    digest = "The content digest of the revision (`ReleaseProposed.content_digest`)."
    standard = {"content-type": CONTENT_TYPE, "traceparent": TRACEPARENT}
    return [
        Channel(
            "releaseProposed",
            s.release_proposed,
            ReleaseProposed,
            "A release is ready and needs review; every reviewer and the coordinator read each one.",
            headers={"Nats-Msg-Id": _msg_id("proposal:<release>:<digest>", "one per revision."), **standard},
            required=("Nats-Msg-Id",),
            sent_by={OUTSIDE: "Propose a release: `mesh publish release.proposed FILE` or `MeshClient.propose`."},
        ),
        Channel(
            "reviewSubmitted",
            _address(s.review_submitted, "reviewer"),
            ReviewSubmitted,
            "One reviewer's review of one revision; each reviewer publishes only under its own name.",
            parameters={"reviewer": "The reviewing agent's name, as on its card."},
            headers={
                "Nats-Msg-Id": _msg_id("review:<release>:<digest>:<reviewer>:<verdict>", "one per verdict."),
                **standard,
            },
            required=("Nats-Msg-Id",),
        ),
        Channel(
            "roundDecided",
            _address(s.round_decided, "release", "digest"),
            RoundDecided,
            "The one outcome of a revision's review round: approved, blocked or escalated.",
            parameters={"release": release, "digest": digest},
            headers={"Nats-Msg-Id": _msg_id("outcome:<release>:<digest>", "one outcome per revision."), **standard},
            required=("Nats-Msg-Id",),
            received_by={OUTSIDE: "Wait for outcomes: `mesh publish --wait`, `MeshClient.wait_for_outcome`."},
        ),
        Channel(
            "deadlineScheduled",
            _address(s.deadline_schedule, "release", "digest"),
            RoundDeadline,
            "A round's deadline, handed to the NATS server's scheduler (one schedule per subject).",
            parameters={"release": release, "digest": digest},
            headers={
                "Nats-Msg-Id": _msg_id("deadline:<release>:<digest>:<at>", "rescheduling is a new id."),
                "Nats-Schedule": {"type": "string", "description": "`@at <RFC 3339 time>`: when to fire."},
                "Nats-Schedule-Target": {"type": "string", "description": "The deadlineFired subject to fire on."},
                **standard,
            },
            required=("Nats-Msg-Id", "Nats-Schedule", "Nats-Schedule-Target"),
            received_by={SERVER: "Keeps the schedule and fires it on its target, deadlineFired."},
        ),
        Channel(
            "deadlineFired",
            _address(s.deadline_fired, "release", "digest"),
            RoundDeadline,
            "A round's deadline passed: the NATS server fired its schedule.",
            parameters={"release": release, "digest": digest},
            headers={
                "Nats-Scheduler": {"type": "string", "description": "The schedule's subject (set by the server)."},
                **standard,
            },
            sent_by={SERVER: "Fires the deadline scheduled on deadlineScheduled at its time."},
        ),
        Channel(
            "deadLetter",
            _address(s.dead_letter, "service"),
            DeadLetter,
            "A message an agent could not process (invalid, or failing on every delivery), kept verbatim.",
            parameters={"service": "The agent that gave up on the message."},
            headers={
                "Nats-Msg-Id": _msg_id("dlq:<stream>:<seq>:<consumer>", "one record per message and consumer."),
                "content-type": CONTENT_TYPE,
            },
            required=("Nats-Msg-Id",),
            received_by={OPERATORS: "Inspect and replay: `mesh dlq list | show | replay`."},
        ),
        Channel(
            "maxDeliveries",
            _address(s.max_deliveries_advisory, "stream", "consumer"),
            MaxDeliveriesAdvisory,
            "`io.nats.jetstream.advisory.v1.max_deliver`: a consumer delivered a message max_deliver times "
            "and never got an ack (its agent died or hung); the agent dead-letters it from here.",
            parameters={"stream": "The stream holding the message.", "consumer": "The durable consumer."},
            sent_by={SERVER: "Publishes the advisory; the advisories stream keeps it until an agent handles it."},
        ),
        Channel(
            "decisionRecorded",
            _address(s.decision_recorded, "service"),
            DecisionRecorded,
            "One decided release of a service, in the steward's long-term history (stream `history`, searched by "
            "`GET /services/{name}/history` on the steward).",
            parameters={"service": "The service released, as a subject token."},
            headers={"Nats-Msg-Id": _msg_id("steward:decided:<stream>:<seq>", "one per outcome applied."), **standard},
            required=("Nats-Msg-Id",),
        ),
        Channel(
            "riskChanged",
            _address(s.risk_changed, "service"),
            ServiceRiskChanged,
            "The steward's risk level of a service moved (low, medium, high), with the reasons.",
            parameters={"service": "The service, as a subject token."},
            headers={
                "Nats-Msg-Id": _msg_id("steward:risk:<stream>:<seq>", "one per outcome that moved it."),
                **standard,
            },
            required=("Nats-Msg-Id",),
            received_by={OUTSIDE: "Follow risk changes: subscribe to the subject, or read the history stream."},
        ),
        Channel(
            "scheduleDefined",
            _address(s.schedule_definition, "agent", "schedule"),
            ScheduleDefinition,
            "An agent's schedule, kept by the NATS server's scheduler (one per subject; publishing again "
            "replaces it, purging the subject removes it). Written by `mesh provision` from what agents declare; "
            "a self-scheduled agent writes its next `@at` run here itself.",
            parameters={"agent": "The agent the schedule is for.", "schedule": "The schedule's name."},
            headers={
                "Nats-Schedule": {
                    "type": "string",
                    "description": "A 6-field cron expression, `@every <interval>`, or `@at <RFC 3339 time>`.",
                },
                "Nats-Schedule-Target": {"type": "string", "description": "The scheduleTick subject to fire on."},
                "Nats-Schedule-Time-Zone": {"type": "string", "description": "IANA time zone of a cron schedule."},
                "Nats-Schedule-TTL": {"type": "string", "description": "How long each fired tick is kept."},
                "content-type": CONTENT_TYPE,
            },
            required=("Nats-Schedule", "Nats-Schedule-Target"),
            sent_by={
                OPERATORS: "`mesh provision` creates, replaces and removes schedules; `mesh schedule pause|resume`."
            },
            received_by={SERVER: "Keeps the schedule and fires a copy onto scheduleTick at each firing."},
        ),
        Channel(
            "scheduleTick",
            _address(s.schedule_tick, "agent", "schedule"),
            ScheduleDefinition,
            "One firing of an agent's schedule: the server's copy of the schedule message (or a manual firing "
            "from `mesh schedule trigger`), read by the agent's durable consumer for that schedule.",
            parameters={"agent": "The agent the tick is for.", "schedule": "The schedule that fired."},
            headers={
                "Nats-Scheduler": {"type": "string", "description": "The schedule's subject (set by the server)."},
                "Nats-Schedule-Next": {"type": "string", "description": "When it fires next (set by the server)."},
                "content-type": CONTENT_TYPE,
            },
            sent_by={
                SERVER: "Fires the schedule kept on scheduleDefined at each firing.",
                OPERATORS: "`mesh schedule trigger NAME` fires one now.",
            },
        ),
        Channel(
            "digestPublished",
            s.digest_published,
            DigestPublished,
            "The digest agent's summary of one window of the mesh's work: outcomes, findings, escalated "
            "releases, dead letters, alerts, spend per reviewer (and a model's summary, with a key).",
            headers={
                "Nats-Msg-Id": _msg_id("digest:<window start>/<window end>", "one digest per window."),
                **standard,
            },
            required=("Nats-Msg-Id",),
            received_by={OUTSIDE: "Follow the digests: subscribe to the subject, or read the digests stream."},
        ),
        Channel(
            "digestDelivered",
            _address(s.digest_delivered, "tick"),
            DigestDelivered,
            "What became of one tick's digest at the outbound webhook: delivered, failed after N attempts, "
            "or skipped; a redelivered tick finds it and does nothing twice.",
            parameters={"tick": "The digest's schedule tick id, as a subject token."},
            headers={"Nats-Msg-Id": _msg_id("digest-delivery:<tick>", "one record per tick."), **standard},
            required=("Nats-Msg-Id",),
        ),
        Channel(
            "meshAlert",
            _address(s.alert, "kind"),
            MeshAlert,
            "A problem the watch agent found in the mesh (dead letters, an escalation backlog, a reviewer "
            "without a live instance, rounds closed by fallback), with its severity and figures.",
            parameters={"kind": "dead_letters, escalation_backlog, reviewer_down or fallback_rounds."},
            headers={"Nats-Msg-Id": _msg_id("alert:<check>:<kind>", "one alert of a kind per check."), **standard},
            required=("Nats-Msg-Id",),
            received_by={OUTSIDE: "Page on alerts: subscribe to the subject; the digest counts them."},
        ),
        Channel(
            "approvalDecided",
            _address(s.approval_decided, "channel", "release"),
            ApprovalDecided,
            "A person's decision on an escalated release: the gateway publishes its authenticated callers' "
            "(channel `gateway`), the operator CLI the operator's (channel `operator`); the coordinator takes "
            "or refuses it.",
            parameters={"channel": "gateway or operator: who may speak for the decider.", "release": release},
            headers={"Nats-Msg-Id": _msg_id("decision:<event id>", "one per decision."), **standard},
            required=("Nats-Msg-Id",),
            sent_by={OPERATORS: "`mesh approve RELEASE --note …`, `mesh reject RELEASE --note …`."},
        ),
        Channel(
            "approvalVerdict",
            _address(s.approval_verdict, "decision"),
            DecisionVerdict,
            "The coordinator's answer to one decision: taken (200, or 202 when another approver is needed) "
            "or refused (403, 404, 409) with the reason.",
            parameters={"decision": "The `approval.decided` event id."},
            headers={"Nats-Msg-Id": _msg_id("verdict:<decision id>", "one per decision."), **standard},
            required=("Nats-Msg-Id",),
            received_by={
                OPERATORS: "`mesh approve` / `mesh reject` wait for it.",
                OUTSIDE: "The gateway answers its caller's decision with it.",
            },
        ),
        Channel(
            "approvalRequested",
            _address(s.approval_requested, "release"),
            ApprovalRequested,
            "An escalated release waits for a person: what the reviewers found, who may decide, by when.",
            parameters={"release": release},
            headers={"Nats-Msg-Id": _msg_id("approval-requested:<release>:<digest>", "one per revision."), **standard},
            required=("Nats-Msg-Id",),
        ),
        Channel(
            "approvalExpiring",
            _address(s.approval_expiring, "release"),
            ApprovalExpiring,
            "Nobody has decided an approval, and its deadline is near (`MESH_APPROVAL_REMINDER`).",
            parameters={"release": release},
            headers={"Nats-Msg-Id": _msg_id("approval-expiring:<release>:<digest>", "one per revision."), **standard},
            required=("Nats-Msg-Id",),
        ),
        Channel(
            "approvalTimerScheduled",
            _address(s.approval_timer_schedule, "kind", "release", "digest"),
            ApprovalTimer,
            "An approval's deadline (`expire`) or reminder (`remind`), handed to the NATS server's scheduler.",
            parameters={"kind": "expire or remind.", "release": release, "digest": digest},
            headers={
                "Nats-Msg-Id": _msg_id("approval-timer:<kind>:<release>:<digest>:<at>", "one per moment."),
                "Nats-Schedule": {"type": "string", "description": "`@at <RFC 3339 time>`: when to fire."},
                "Nats-Schedule-Target": {"type": "string", "description": "The approvalTimerFired subject."},
                **standard,
            },
            required=("Nats-Msg-Id", "Nats-Schedule", "Nats-Schedule-Target"),
            received_by={SERVER: "Keeps the schedule and fires it on its target, approvalTimerFired."},
        ),
        Channel(
            "approvalTimerFired",
            _address(s.approval_timer_fired, "kind", "release", "digest"),
            ApprovalTimer,
            "An approval's deadline or reminder came: the NATS server fired its schedule.",
            parameters={"kind": "expire or remind.", "release": release, "digest": digest},
            headers={
                "Nats-Scheduler": {"type": "string", "description": "The schedule's subject (set by the server)."},
                **standard,
            },
            sent_by={SERVER: "Fires the timer scheduled on approvalTimerScheduled at its time."},
        ),
        Channel(
            "auditRecord",
            _address(s.audit_record, "kind", "release"),
            AuditRecord,
            "One immutable record of the approvals' audit trail: a request, a decision, a refusal or an expiry.",
            parameters={"kind": "requested, decided, refused or expired.", "release": release},
            headers={"Nats-Msg-Id": _msg_id("audit:<kind>:<what>", "one per record."), **standard},
            required=("Nats-Msg-Id",),
            received_by={OPERATORS: "`mesh audit [--release R]` lists them."},
        ),
    ]


def asyncapi_document(agents: Iterable[Any], settings: BusSettings) -> dict:
    """The AsyncAPI 3.0 document of these agents (each with `.name`, `.subscriptions`,
    `.exhausted` and `.produces`, as `bus.runtime.Agent` has) on the mesh of `settings`."""
    s = settings.subjects
    known = channels(s)
    agents = list(agents)
    used: dict[str, Channel] = {}
    operations: dict[str, dict] = {}
    about = {**PARTIES, **{a.name: getattr(a, "description", "") or a.name for a in agents}}
    parties: dict[str, str] = {}  # who performs an operation -> what it is

    def operation(key: str, action: str, channel: Channel, party: str, summary: str, **extra: Any) -> None:
        used[channel.id] = channel
        parties.setdefault(party, about[party])
        operations[key] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel.id}"},
            "summary": summary,
            "tags": [{"name": party}],
            "messages": [{"$ref": f"#/channels/{channel.id}/messages/{channel.id}"}],
            **extra,
        }

    for agent in agents:
        for sub in [*agent.subscriptions, *agent.exhausted]:
            for channel in _on(known, sub.subject, sub.model, f"{agent.name} consumes"):
                consumer = sub.spec
                operation(
                    f"{consumer.durable}.receive.{channel.id}",
                    "receive",
                    channel,
                    agent.name,
                    f"{agent.name} reads {channel.id} through the durable consumer {consumer.durable}.",
                    description=f"Pulled from stream `{consumer.stream}` by the durable consumer `{consumer.durable}` "
                    f"(filter `{consumer.filter_subject}`), which every replica of {agent.name} shares: each "
                    "message goes to one replica, is acked once handled, retried with growing delays when "
                    "handling fails, and dead-lettered on its last delivery.",
                    bindings={"nats": {"queue": consumer.durable, "bindingVersion": "0.1.0"}},
                )
        daemon = getattr(agent, "daemon", None)
        for applier in daemon.appliers if daemon else ():
            for channel in _on(known, applier.subject, applier.model, f"{agent.name} applies"):
                operation(
                    f"{agent.name}.applies.{channel.id}",
                    "receive",
                    channel,
                    agent.name,
                    f"{agent.name} applies {channel.id} to its state, read in order from stream `{applier.stream}`.",
                    description=f"A daemon agent: its one active instance reads `{applier.stream}` (filter "
                    f"`{applier.subject}`) from the position of its last checkpoint, with no durable consumer; "
                    "the others stand by (bus/stateful).",
                )
        sends = list(agent.produces)
        if agent.subscriptions:  # the runtime dead-letters what it cannot process
            sends.append((s.dead_letter(agent.name), DeadLetter))
        for subject, model in sends:
            for channel in _on(known, subject, model, f"{agent.name} publishes"):
                operation(
                    f"{agent.name}.send.{channel.id}",
                    "send",
                    channel,
                    agent.name,
                    f"{agent.name} publishes on {subject}.",
                    description="Published to JetStream and acked by the stream before the message that caused it "
                    "is acked; a redelivered cause publishes again under the same `Nats-Msg-Id`.",
                )
    for channel in list(used.values()):
        for party, how in channel.sent_by.items():
            operation(f"{party}.send.{channel.id}", "send", channel, party, how)
        for party, how in channel.received_by.items():
            operation(f"{party}.receive.{channel.id}", "receive", channel, party, how)

    ordered = [c for c in known if c.id in used]
    return {
        "asyncapi": VERSION,
        "id": f"urn:agent-mesh:{s.namespace}",
        "info": {
            "title": f"agent-mesh ({s.namespace})",
            "version": mesh_version(),
            "description": "Every subject of the mesh in namespace "
            f"`{s.namespace}`: who publishes and who consumes it, each payload's JSON Schema and the headers "
            "that matter. Generated from what the agents declare (`mesh asyncapi`; the registry serves it at "
            "`/asyncapi.json`). Operations are tagged with the agent or party that performs them.",
            "tags": [{"name": name, "description": about} for name, about in parties.items()],
        },
        "defaultContentType": "application/json",
        "servers": _servers(settings),
        "channels": {c.id: _channel(c) for c in ordered},
        "operations": operations,
        "components": {
            "messages": {c.id: _message(c) for c in ordered},
            "schemas": _schemas(c.model for c in ordered),
        },
    }


def _on(known: list[Channel], subject: str, model: type[BaseModel], what: str) -> list[Channel]:
    found = [c for c in known if c.model is model and _overlap(c.pattern, subject)]
    if not found:
        raise ValueError(
            f"{what} {model.__name__} on {subject}, which lies on no channel of the AsyncAPI document; "
            "add its channel to `channels()` in bus/asyncapi.py"
        )
    return found


def _overlap(a: str, b: str) -> bool:
    """Whether two NATS subject patterns (`*` one token, a final `>` one or more) share a subject."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x, y = (ta[i] if i < len(ta) else None), (tb[i] if i < len(tb) else None)
        if x is None or y is None:
            return False
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return True


def _channel(c: Channel) -> dict:
    channel: dict[str, Any] = {
        "address": c.address,
        "description": c.description,
        "messages": {c.id: {"$ref": f"#/components/messages/{c.id}"}},
    }
    if c.parameters:
        channel["parameters"] = {name: {"description": about} for name, about in c.parameters.items()}
    return channel


def _message(c: Channel) -> dict:
    contract = next((k for k in CONTRACTS.values() if k.model is c.model), None)
    message: dict[str, Any] = {
        "name": contract.name if contract else c.id,
        "title": c.model.__name__,
        "summary": contract.summary if contract else c.description,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{c.model.__name__}"},
    }
    if c.headers:
        message["headers"] = {"type": "object", "properties": c.headers, "required": list(c.required)}
    return message


def _schemas(models: Iterable[type[BaseModel]]) -> dict:
    """Every payload's JSON Schema, its nested models beside it (`#/components/schemas/<Model>`)."""
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema([(m, "validation") for m in unique], ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})
    for contract in CONTRACTS.values():
        schema = schemas.get(contract.model.__name__)
        if schema is not None and not schema.get("description"):
            schema["description"] = contract.summary
    return dict(sorted(schemas.items()))


def _servers(settings: BusSettings) -> dict:
    servers = {}
    for i, url in enumerate(settings.nats_servers):
        parts = urlsplit(without_credentials(url))
        tls = parts.scheme == "tls" or settings.nats_tls_ca is not None
        servers["nats" if i == 0 else f"nats-{i + 1}"] = {
            "host": parts.netloc,
            "protocol": "nats",
            "description": "NATS with JetStream"
            + (", over TLS" if tls else "")
            + ". Each agent connects with an identity of its own, allowed only the subjects it declares.",
        }
    return servers


__all__ = ["Channel", "asyncapi_document", "channels"]

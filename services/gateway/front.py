"""The gateway's core, shared by every way in (HTTP events, webhooks, A2A): turn a caller's
JSON into a contract event on the bus, and tell what became of it.

Nothing here lives in one process's memory. What was accepted, idempotency keys and the round
so far are read from the bus (the gateway's KV bucket, the rounds KV, the outcomes stream), so
any replica answers any request about any revision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from bus.approvals import ApprovalsClient
from bus.client import MeshClient
from bus.expiring_keys import claim, read
from bus.telemetry import Telemetry
from contracts.catalog import CONTRACTS
from contracts.envelope import SCHEMA_VERSION, Envelope, new_event_id, utc_now
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.subjects import subject_token
from coordinator.rounds import Round, RoundState
from coordinator.store import round_key
from services.gateway.callers import Caller
from services.gateway.settings import GatewaySettings

PRODUCER = "gateway"
# An accepted revision is known this long even if no coordinator ever opens its round (as rounds are kept).
ACCEPTED_SECONDS = 30 * 24 * 3600.0


class UnknownEventType(LookupError):
    """No contract of that name may be published from outside the mesh."""


class InvalidEvent(ValueError):
    """The body is not the contract: `errors` says which field and why (`field.path: message`)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class IdempotencyConflict(ValueError):
    """An `Idempotency-Key` already used by this caller for other content."""


@dataclass(frozen=True)
class Revision:
    """One revision of a release: its id and the digest of its content (the round's key)."""

    release_id: str
    digest: str

    @property
    def path(self) -> str:
        """Its status URL (relative): `/v1/releases/{release_id}/revisions/{digest}`."""
        return f"/v1/releases/{quote(self.release_id, safe='')}/revisions/{self.digest}"

    def as_dict(self) -> dict[str, str]:
        return {"release_id": self.release_id, "revision": self.digest}


@dataclass(frozen=True)
class Accepted:
    """What `submit` did: the revision, and whether this very call published it (False when an
    earlier call with the same content or the same idempotency key already had)."""

    revision: Revision
    published: bool
    proposal: ReleaseProposed


@dataclass(frozen=True)
class FlowEvent:
    """One thing that happened to a revision, as a watcher sees it. `id` orders the reviews
    (the n-th review counted is `n`) and is what a watcher resumes from; the outcome is last."""

    kind: str  # "review" | "approval" (the round waits for a person) | "outcome"
    id: str
    data: dict[str, Any] = field(default_factory=dict)


def parse_event(event_type: str, body: bytes | str | dict) -> ReleaseProposed:
    """The contract event in `body`, or InvalidEvent naming every bad field (UnknownEventType
    for an event type nobody outside may publish)."""
    contract = CONTRACTS.get(event_type)
    if contract is None or not contract.publishable:
        raise UnknownEventType(event_type)
    try:
        if isinstance(body, dict):
            event = contract.model.model_validate(body)
        else:
            event = contract.model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
        ) from None
    if problems := _unfit_for_the_gateway(event):
        raise InvalidEvent(problems)
    return event


# What the gateway writes itself on every event it publishes, whatever the caller sent.
_ENVELOPE = {name.replace("_", "").lower(): name for name in Envelope.model_fields}


def _unfit_for_the_gateway(event: ReleaseProposed) -> list[dict[str, str]]:
    """What a caller may not send through the gateway though the contract allows it: a release id
    no status URL can hold, and extra fields posing as the envelope (`onBehalfOf`, `Producer`)."""
    problems = []
    release_id = event.release_id
    if "/" in release_id or "\\" in release_id or release_id.strip(".") == "":
        problems.append(
            {
                "field": "release_id",
                "message": "must not contain '/' or '\\' nor be only dots: it is part of a URL path",
            }
        )
    for extra in event.model_extra or {}:
        if (name := _ENVELOPE.get(extra.replace("_", "").replace("-", "").lower())) and extra != name:
            problems.append({"field": extra, "message": f"looks like the envelope's {name!r}, which the gateway sets"})
    return problems


def publishable_event_types() -> list[str]:
    return sorted(name for name, contract in CONTRACTS.items() if contract.publishable)


def _key_part(value: str) -> str:
    """A KV key token for any string (a caller id, a client's idempotency key)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Front:
    """Publishing for a caller and reading what became of it, over one NATS connection."""

    def __init__(
        self, nc: Client | Callable[[], Client], settings: GatewaySettings, *, telemetry: Telemetry | None = None
    ) -> None:
        """`nc` may be a function returning the connection, for a service whose connection opens
        after its routes are built."""
        self.settings = settings
        self.subjects = settings.subjects
        self._connection = nc if callable(nc) else (lambda: nc)
        self._telemetry = telemetry
        self._client: MeshClient | None = None
        self._gateway_kv: KeyValue | None = None
        self._rounds_kv: KeyValue | None = None

    @property
    def client(self) -> MeshClient:
        if self._client is None:
            self._client = MeshClient(self._connection(), self.settings, telemetry=self._telemetry, name=PRODUCER)
        return self._client

    @property
    def js(self):
        return self.client.js

    async def gateway_kv(self) -> KeyValue:
        if self._gateway_kv is None:
            self._gateway_kv = await self.js.key_value(self.subjects.gateway_bucket)
        return self._gateway_kv

    async def rounds_kv(self) -> KeyValue | None:
        if self._rounds_kv is None:
            try:
                self._rounds_kv = await self.js.key_value(self.subjects.rounds_bucket)
            except BucketNotFoundError:
                return None
        return self._rounds_kv

    # --- in ---------------------------------------------------------------------------

    async def submit(
        self, proposal: ReleaseProposed, *, caller: Caller, idempotency_key: str | None = None
    ) -> Accepted:
        """Publish `proposal` for `caller` (recorded as `on_behalf_of`; whatever the body said is
        replaced). The message id is the content's, so the same content twice is stored once in the
        dedupe window, and a decided round ignores it after. An `idempotency_key` also binds the
        caller's key to this content: reused for other content it raises IdempotencyConflict.

        A retry is published again rather than skipped: if the first attempt died between claiming
        its key and publishing, skipping would lose the event; publishing twice costs nothing."""
        proposal = proposal.model_copy(update=self._envelope(proposal, caller))
        revision = Revision(proposal.release_id, proposal.content_digest)
        if idempotency_key is not None:
            await self._claim_idempotency(caller, idempotency_key, revision)
        await self._remember_accepted(revision)
        ack = await self.client.propose(proposal)
        return Accepted(revision, published=not ack.duplicate, proposal=proposal)

    @staticmethod
    def _envelope(proposal: ReleaseProposed, caller: Caller) -> dict[str, Any]:
        """The envelope of an event the gateway publishes: its own, never the caller's (an
        `event_id` chosen by a caller could collide with another release's)."""
        return {
            "event_id": new_event_id(),
            "correlation_id": proposal.release_id,
            "causation_id": None,
            "producer": PRODUCER,
            "on_behalf_of": caller.id,
            "occurred_at": utc_now(),
            "schema_version": SCHEMA_VERSION,
        }

    async def _claim_idempotency(self, caller: Caller, key: str, revision: Revision) -> None:
        """Bind the caller's key to this revision; IdempotencyConflict if it is bound to another."""
        kv = await self.gateway_kv()
        name = f"idem.{_key_part(caller.id)}.{_key_part(key)}"
        value = json.dumps(revision.as_dict()).encode()
        ttl = self.settings.gateway_idempotency_seconds
        while not await claim(kv, name, value, ttl=ttl):
            held = await read(kv, name)
            if held is None:
                continue  # expired in between: claim it again
            if json.loads(held[0]) != revision.as_dict():
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used for other content (revision {json.loads(held[0])['revision']})"
                )
            return

    async def _remember_accepted(self, revision: Revision) -> None:
        await claim(await self.gateway_kv(), self._accepted_key(revision), b"1", ttl=ACCEPTED_SECONDS)

    @staticmethod
    def _accepted_key(revision: Revision) -> str:
        return f"accepted.{subject_token(revision.release_id)}.{subject_token(revision.digest)}"

    # --- out --------------------------------------------------------------------------

    async def outcome(self, revision: Revision) -> RoundDecided | None:
        return await self.client.outcome_of_revision(revision.release_id, revision.digest)

    async def wait(self, revision: Revision, timeout: float) -> RoundDecided | None:
        """The outcome, waiting up to `timeout` seconds for it; None if it did not come."""
        if timeout <= 0:
            return await self.outcome(revision)
        return await self.client.wait_for_revision(revision.release_id, revision.digest, timeout=timeout)

    async def settled(self, revision: Revision, timeout: float) -> RoundDecided | None:
        """Wait up to `timeout` seconds until the revision is decided or waits for a person (which
        may take a day): the outcome, if that is what came. It is heard on the wire, where it may
        arrive before the outcomes stream has stored it: pass it to `status`, do not read it back."""
        approvals = ApprovalsClient(self.client.nc, self.settings)
        found = await approvals.outcome_or_request(self.client, revision.release_id, revision.digest, timeout=timeout)
        return found if isinstance(found, RoundDecided) else None

    async def round(self, revision: Revision) -> Round | None:
        kv = await self.rounds_kv()
        if kv is None:
            return None
        try:
            entry = await kv.get(round_key(revision.release_id, revision.digest))
        except KeyNotFoundError:
            return None
        return Round.model_validate_json(entry.value) if entry.value else None

    async def accepted(self, revision: Revision) -> bool:
        return await read(await self.gateway_kv(), self._accepted_key(revision)) is not None

    async def status(self, revision: Revision, *, outcome: RoundDecided | None = None) -> dict[str, Any] | None:
        """The revision so far: `submitted` (accepted, no round yet), `open` (reviewers, reviews
        received, deadline), `awaiting_approval` (the reviewers escalated; a person decides: its
        `approval`) or `decided` (with the outcome); None if nobody ever proposed it. `outcome`:
        one already heard (see `settled`)."""
        outcome = outcome or await self.outcome(revision)
        round_ = await self.round(revision)
        if outcome is None and round_ is None and not await self.accepted(revision):
            return None
        state = "decided" if outcome is not None else ("submitted" if round_ is None or not round_.expected else "open")
        body: dict[str, Any] = {**revision.as_dict(), "state": state}
        if round_ is not None:
            body.update(
                expected=round_.expected,
                required=round_.required,
                reviews=[review_summary(r) for r in _counted(round_)],
                waiting_for=[name for name in round_.expected if name not in round_.reviews],
                opened_at=_iso(round_.opened_at),
                deadline=_iso(round_.deadline),
            )
        body["outcome"] = _json(outcome) if outcome is not None else None
        body["links"] = {"self": revision.path, "events": f"{revision.path}/events"}
        if round_ is not None and round_.approval is not None:
            if outcome is None and round_.state == RoundState.AWAITING_APPROVAL:
                body["state"] = "awaiting_approval"
            body["approval"] = approval_summary(round_)
            body["links"].update(approval=body["approval"]["links"]["self"], page=body["approval"]["links"]["page"])
        return body

    async def follow(self, revision: Revision, *, after: int = 0) -> AsyncIterator[FlowEvent]:
        """Each review counted after the `after`-th, as it is counted, then the outcome; ends with
        the outcome. Resuming with the id of the last event seen loses and repeats nothing."""
        kv = await self.rounds_kv()
        sent = after
        asked = False  # the round's wait for a person was told
        if kv is not None:
            watcher = await kv.watch(round_key(revision.release_id, revision.digest))
            try:
                async for entry in watcher:
                    if entry is None or not entry.value:
                        if await self.outcome(revision) is not None:
                            # decided: the reviews counted since the value we were given, if its
                            # round is still kept, then only the outcome is left
                            if (last := await self.round(revision)) is not None:
                                for event in _reviews_after(last, sent):
                                    sent = int(event.id)
                                    yield event
                            break
                        continue
                    round_ = Round.model_validate_json(entry.value)
                    for event in _reviews_after(round_, sent):
                        sent = int(event.id)
                        yield event
                    if round_.state == RoundState.AWAITING_APPROVAL and not asked:
                        asked = True
                        yield FlowEvent("approval", "approval", approval_summary(round_))
                    if round_.state == RoundState.DECIDED:
                        break
            finally:
                await watcher.stop()
        outcome = await self.wait(revision, timeout=float("inf"))
        if outcome is not None:
            yield FlowEvent("outcome", "outcome", _json(outcome))


def approval_summary(round_: Round) -> dict[str, Any]:
    """A round's wait for a person, as the status document and the event stream tell it."""
    approval = round_.approval
    base = f"/v1/approvals/{approval.id}"
    return {
        "id": approval.id,
        "state": "pending" if round_.state == RoundState.AWAITING_APPROVAL else "settled",
        "reason": approval.reason,
        "approvers": approval.approvers,
        "needed": approval.needed,
        "approved_by": approval.approved_by,
        "deadline": _iso(approval.deadline),
        "fallback": approval.fallback,
        "links": {"self": base, "decision": f"{base}/decision", "page": f"/approvals/{approval.id}"},
    }


def _counted(round_: Round) -> list:
    """Counted reviews in the order counted (a stricter second review replaces its first)."""
    return [r for r in round_.reviews.values()]


def _reviews_after(round_: Round, after: int) -> list[FlowEvent]:
    by_event = {review.event_id: review for review in round_.reviews.values()}
    events = []
    for n, event_id in enumerate(round_.counted_order[after:], start=after + 1):
        review = by_event.get(event_id)  # a review replaced by a stricter one is no longer there
        events.append(FlowEvent("review", str(n), _json(review) if review else {"superseded": event_id}))
    return events


def review_summary(review: Any) -> dict[str, Any]:
    return {
        "reviewer": review.reviewer,
        "verdict": str(review.verdict),
        "findings": len(review.findings),
        "event_id": review.event_id,
    }


def _json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None

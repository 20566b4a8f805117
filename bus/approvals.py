"""Reading approvals and deciding them over the bus: what the gateway and `mesh approve` share.

    approvals = ApprovalsClient(nc, settings)
    pending = await approvals.list(state="pending")
    view = await approvals.get("rel-42.3812ed07d3c8")
    event, verdict = await approvals.decide(view, decision="approve", note="checked the changelog",
                                            decider="key:alice", channel="gateway", via="http", timeout=5)

Approvals are read from the approvals KV bucket, where the coordinator keeps each one as people
see it (`ApprovalView`). A decision is an `approval.decided` event published on the channel's
subject (the gateway's or the operator's: each identity may publish only on its own); the
coordinator takes or refuses it and answers on the decision's verdict subject, which the decider
subscribes to before publishing. `verdict` is None when no answer came in time: the decision
stays on the bus and is taken (or refused) when a coordinator runs.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import suppress

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from bus.client import TRANSIENT_ERRORS, MeshClient
from bus.settings import BusSettings
from bus.telemetry import Telemetry
from contracts.approvals import ApprovalDecided, ApprovalState, ApprovalView, DecisionVerdict, approval_id
from contracts.ids import approval_decision_msg_id
from contracts.outcomes import RoundDecided

APPROVAL_ID = re.compile(r"^[A-Za-z0-9_=-]{1,80}\.[0-9a-f]{0,12}$")


class ApprovalsClient:
    def __init__(
        self, nc: Client, settings: BusSettings, *, telemetry: Telemetry | None = None, name: str = "mesh"
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=settings.publish_timeout_seconds)
        self.subjects = settings.subjects
        self.telemetry = telemetry or Telemetry()
        self.name = name
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue | None:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(self.subjects.approvals_bucket)
            except BucketNotFoundError:
                return None
        return self._kv

    async def get(self, approval_id: str) -> ApprovalView | None:
        """One approval, or None (an id that cannot be one included)."""
        kv = await self.kv()
        if kv is None or not APPROVAL_ID.match(approval_id):
            return None
        try:
            entry = await kv.get(approval_id)
        except KeyNotFoundError:
            return None
        return ApprovalView.model_validate_json(entry.value) if entry.value else None

    async def list(self, state: str | None = None) -> list[ApprovalView]:
        """Every approval still kept (in `state` only, when given), the oldest request first."""
        kv = await self.kv()
        if kv is None:
            return []
        found: list[ApprovalView] = []
        watcher = await kv.watch(">", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                if entry.value:
                    view = ApprovalView.model_validate_json(entry.value)
                    if state is None or view.state == state:
                        found.append(view)
        finally:
            await watcher.stop()
        return sorted(found, key=lambda view: view.requested_at)

    async def wait_for_request(self, release_id: str, digest: str, *, timeout: float) -> ApprovalView | None:
        """The approval of one revision as soon as it exists (the round began waiting for a person);
        None if none did within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        wanted = approval_id(release_id, digest)
        while True:
            with suppress(*TRANSIENT_ERRORS):  # an election or a reconnect: look again, as for the outcome
                if (view := await self.get(wanted)) is not None:
                    return view
            if loop.time() >= give_up:
                return None
            await asyncio.sleep(min(0.25, max(0.0, give_up - loop.time())))

    async def outcome_or_request(
        self, client: MeshClient, release_id: str, digest: str, *, timeout: float
    ) -> RoundDecided | ApprovalView | None:
        """The revision's outcome, or its pending approval (a person decides), whichever comes
        first within `timeout` seconds; None when neither came."""
        outcome = asyncio.create_task(client.wait_for_revision(release_id, digest, timeout=timeout))
        asked = asyncio.create_task(self.wait_for_request(release_id, digest, timeout=timeout))
        try:
            done, _ = await asyncio.wait({outcome, asked}, return_when=asyncio.FIRST_COMPLETED)
            if outcome in done or (view := asked.result()) is None or view.state != ApprovalState.PENDING:
                return await outcome  # decided already, or no person asked for: the outcome, if it comes
            return view
        finally:
            for task in (outcome, asked):
                task.cancel()

    async def of_release(self, release_id: str, *, state: str | None = None) -> list[ApprovalView]:
        return [view for view in await self.list(state) if view.release_id == release_id]

    async def decide(
        self,
        view: ApprovalView,
        *,
        decision: str,
        note: str,
        decider: str,
        channel: str,
        via: str,
        timeout: float,
    ) -> tuple[ApprovalDecided, DecisionVerdict | None]:
        """Publish a decision on `view` and wait up to `timeout` seconds for the coordinator's verdict."""
        event = ApprovalDecided(
            correlation_id=view.release_id,
            producer=self.name,
            on_behalf_of=decider,
            approval_id=view.id,
            release_id=view.release_id,
            content_digest=view.revision,
            decision=decision,
            note=note,
            decider=decider,
            via=via,
        )
        subject = self.subjects.approval_decided(channel, view.release_id)
        answers = await self.nc.subscribe(self.subjects.approval_verdict(event.event_id))  # before publishing
        try:
            headers = {"Nats-Msg-Id": approval_decision_msg_id(event.event_id), "content-type": "application/json"}
            with self.telemetry.publishing(self.name, subject, headers, event) as sent:
                await self.js.publish(subject, event.model_dump_json().encode(), headers=sent)
            with suppress(asyncio.TimeoutError, TimeoutError):
                msg = await answers.next_msg(timeout=max(timeout, 0.001))
                return event, DecisionVerdict.model_validate_json(msg.data)
            return event, await self.verdict_of(event.event_id)  # answered while we were not listening
        finally:
            with suppress(Exception):
                await answers.unsubscribe()

    async def verdict_of(self, decision_id: str) -> DecisionVerdict | None:
        """The verdict already given on a decision, if any."""
        try:
            msg = await self.js.get_last_msg(
                self.subjects.approvals_stream, self.subjects.approval_verdict(decision_id)
            )
        except (NotFoundError, TimeoutError):
            return None
        return DecisionVerdict.model_validate_json(msg.data)

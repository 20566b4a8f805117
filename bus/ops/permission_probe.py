"""What a NATS credential may do, asked of the live server, without changing anything.

NATS checks permissions per subject when a client publishes or subscribes, and tells the client
about a refusal only through an asynchronous `-ERR 'Permissions Violation for Publish to "<subject>"'`
(nats-py lowercases it and hands it to the connection's error callback). So each check publishes
(or subscribes) once, then flushes: the server answers the flush's PING after it handled the
message, so a refusal has arrived by then, and a check refused on its own subject is denied.

Nothing is changed on the way:
- every probe publishes with no reply subject, so no handler has anyone to answer;
- `publish-stored` adds `Nats-Expected-Stream: <a stream that does not exist>`: JetStream checks
  it after the permission check and stores nothing (an allowed probe leaves the stream as it was);
- `api` sends a truncated JSON body that every JetStream API handler rejects as invalid. A
  request with no reply subject is still *acted on* for `STREAM.DELETE` and `STREAM.CREATE`
  (checked on nats-server 2.15.1), so `standard_checks` probes those on a name no stream has;
  `CONSUMER.MSG.NEXT` with no reply subject hands out nothing, so the real consumers are probed.

Core NATS subscribers of a probed subject (not JetStream consumers) do see one empty message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from nats.aio.client import Client

from bus.provision import ConsumerSpec
from bus.settings import BusSettings

Kind = Literal["publish", "publish-stored", "subscribe", "api"]

# Truncated JSON: STREAM.DELETE wants an empty body, STREAM.CREATE and MSG.NEXT a valid one.
_API_BODY = b'{"mesh-permission-probe"'
_STAND_IN = "probed on a name no stream has: a rule naming one real stream is not seen"


@dataclass(frozen=True)
class Check:
    """One thing a credential might be allowed to do, and the subject that decides it."""

    label: str
    kind: Kind
    subject: str
    note: str = ""


@dataclass(frozen=True)
class Result:
    check: Check
    allowed: bool
    detail: str = ""


async def probe(nc: Client, checks: list[Check], *, settle: float = 0.02) -> list[Result]:
    """Run each check on `nc`, one after the other, and say which ones the server refused.

    The connection's error callback is borrowed for the duration (nats-py has no other way to
    hear about permission violations); errors that are not permission violations still reach it.
    """
    refusals: list[str] = []
    previous = nc._error_cb

    async def on_error(exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            refusals.append(str(exc))
        else:
            await previous(exc)

    nc._error_cb = on_error
    expected_stream = f"MESH_PERMISSION_PROBE_{uuid.uuid4().hex.upper()}"
    results = []
    try:
        for check in checks:
            refusals.clear()
            await _attempt(nc, check, expected_stream)
            await nc.flush()
            await asyncio.sleep(settle)  # the flush already ordered the -ERR first; this is slack
            # The server echoes the subject; nats-py lowercases the whole error line.
            action = "subscription to" if check.kind == "subscribe" else "publish to"
            refused = [r for r in refusals if f'{action} "{check.subject.lower()}"' in r.lower()]
            results.append(Result(check, allowed=not refused, detail=refused[0] if refused else check.note))
    finally:
        nc._error_cb = previous
    return results


async def _attempt(nc: Client, check: Check, expected_stream: str) -> None:
    if check.kind == "subscribe":
        sub = await nc.subscribe(check.subject)
        await nc.flush()
        await sub.unsubscribe()
    elif check.kind == "publish-stored":
        await nc.publish(check.subject, b"", headers={"Nats-Expected-Stream": expected_stream})
    elif check.kind == "api":
        await nc.publish(check.subject, _API_BODY)
    else:
        await nc.publish(check.subject)


def standard_checks(settings: BusSettings, agents: Mapping[str, list[ConsumerSpec]]) -> list[Check]:
    """The checks that matter for this mesh: its subjects, each service's consumers, its buckets.

    `agents` maps each service name to the consumers it declares (`build(settings).consumers`).
    """
    s = settings.subjects
    checks = [Check("publish an event", "publish-stored", s.release_proposed)]
    checks += [Check(f"publish a review as {name}", "publish-stored", s.review_submitted(name)) for name in agents]
    checks += [
        Check("publish an outcome", "publish-stored", s.round_decided("probe", "probe")),
        Check("schedule a deadline", "publish-stored", s.deadline_schedule("probe", "probe")),
    ]
    consumers = list(dict.fromkeys(spec for specs in agents.values() for spec in specs))
    checks += [
        Check(
            f"forge a max-deliveries advisory ({c.stream}/{c.durable})",
            "publish-stored",
            s.max_deliveries_advisory(c.stream, c.durable),
        )
        for c in consumers
        if c.stream != s.advisories_stream
    ]
    checks.append(Check("read outcomes", "subscribe", s.outcomes))
    checks += [
        Check(f"pull {c.stream}/{c.durable}", "api", f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}")
        for c in consumers
    ]
    checks += [
        Check(f"write KV bucket {bucket}", "publish-stored", f"$KV.{bucket}.probe")
        for bucket in (s.rounds_bucket, s.agents_bucket, s.instances_bucket)
    ]
    # Acted on even with no reply subject: only ever probed on a name that no stream has.
    stand_in = f"MESH_PERMISSION_PROBE_{uuid.uuid4().hex.upper()}"
    checks += [
        Check("delete a stream", "api", f"$JS.API.STREAM.DELETE.{stand_in}", _STAND_IN),
        Check("create a stream", "api", f"$JS.API.STREAM.CREATE.{stand_in}", _STAND_IN),
    ]
    return checks

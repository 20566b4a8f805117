"""Operator controls, as plain functions: what `mesh admin` does.

    action = await pause(nc, settings, "security", until=parse_until("30m"), by=operator(settings))
    await resume(nc, settings, "security", by=...)
    await drain(nc, settings, "security", by=...)        # its instances finish and exit
    actions = await history(nc.jetstream(), settings, agent="security")

A pause uses JetStream consumer pause (NATS >= 2.11): the agent's durable consumers deliver
nothing until `until` or a resume; its instances keep running and idle, and what is published
meanwhile waits in the stream, with the consumers' state (acked, pending, redelivery counts)
intact. A drain asks the agent's instances over core NATS to finish what they hold and exit
(bus/drain.py). Each action is recorded in the admin stream (contracts/admin.py) once done.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from bus.drain import drain_subject
from bus.errors import MeshError
from bus.ops.dead_letters import read_stream
from bus.ops.settings import MeshSettings
from bus.provision import ConsumerSpec
from contracts.admin import Action, AdminAction
from contracts.ids import admin_action_msg_id

# "Until resumed": JetStream has no open-ended pause, so a pause without `until` lasts for ever.
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ConsumerState:
    """One durable consumer of an agent, as the server sees it now."""

    consumer: str  # stream/durable
    paused_until: datetime | None = None  # None: delivering (or missing)
    missing: bool = False

    def describe(self) -> str:
        if self.missing:
            return "not created yet"
        return "running" if self.paused_until is None else f"paused {until_text(self.paused_until)}"


def until_text(until: datetime | None) -> str:
    """`until 2026-11-28T09:00:00Z`, or `until resumed`."""
    if until is None or until >= FOREVER:
        return "until resumed"
    return "until " + until.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_until(text: str, *, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `1d`, `1h30m` from `now`, or an RFC 3339 time with its zone; always in the future."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text and _DURATION.sub("", text) == "":
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
        if seconds > 0:
            try:
                return now + timedelta(seconds=seconds)
            except OverflowError:
                raise MeshError(f"--until {text!r} is further ahead than a calendar goes; leave --until out") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MeshError(
            f"--until {text!r} is neither a duration (30m, 2h, 1d, 1h30m) nor an RFC 3339 time (2026-11-28T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise MeshError(f"--until {text!r} has no time zone; add Z or an offset such as +01:00")
    if moment <= now:
        raise MeshError(f"--until {text!r} is in the past; give a later time, or use `mesh admin resume`")
    return moment.astimezone(UTC)


def operator(settings: MeshSettings) -> str:
    """Who is acting: `user@host`, plus the NATS identity in use (`(creds: operator)`)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment (a bare container)
        user = "unknown"
    who = f"{user}@{socket.gethostname()}"
    identity = settings.nats_identity or (settings.nats_credentials.stem if settings.nats_credentials else None)
    return f"{who} (creds: {identity})" if identity else who


def work_consumers(settings: MeshSettings, agent: str) -> list[ConsumerSpec]:
    """The durable consumers `agent` does its work from, from its service's declaration.

    Not its max-deliveries advisory consumers (`<durable>-exhausted`): those only dead-letter
    what the work consumer already gave up on. A paused work consumer delivers nothing, so it
    gives up on nothing and they stay idle anyway; left running, they still record what failed
    before the pause instead of holding it back.
    """
    from services.index import SERVICES

    check_agent(agent)
    advisories = settings.subjects.advisories_stream
    specs = SERVICES[agent].load().build(settings).consumers
    return [spec for spec in specs if spec.stream != advisories]


def check_agent(agent: str) -> None:
    """Raise a one-line error unless `agent` is one of the mesh's services."""
    from services.index import SERVICES

    if agent not in SERVICES:
        raise MeshError(f"unknown agent {agent!r}; known agents: {', '.join(SERVICES)}")


async def pause(nc: Client, settings: MeshSettings, agent: str, *, until: datetime | None, by: str) -> AdminAction:
    """Pause every work consumer of `agent` until `until` (None: until resumed), then record it."""
    specs = work_consumers(settings, agent)
    if not specs:
        raise MeshError(f"{agent} reads no stream, so there is nothing to pause; `mesh admin drain {agent}` stops it")
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    await _audit_stream_exists(js, settings)
    stamp = _rfc3339(until or FOREVER)
    for spec in specs:
        try:
            await js.pause_consumer(spec.stream, spec.durable, stamp)
        except NotFoundError:
            raise MeshError(
                f"consumer {spec.stream}/{spec.durable} does not exist yet; run `mesh provision` (or start "
                f"{agent} once) first"
            ) from None
    action = AdminAction(action=Action.PAUSE, agent=agent, by=by, until=until, consumers=_names(specs))
    await record(js, settings, action)
    return action


async def resume(nc: Client, settings: MeshSettings, agent: str, *, by: str) -> AdminAction:
    """Let every work consumer of `agent` deliver again, then record it (resuming a running one is harmless)."""
    specs = work_consumers(settings, agent)
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    await _audit_stream_exists(js, settings)
    for spec in specs:
        try:
            await js.resume_consumer(spec.stream, spec.durable)
        except NotFoundError:
            continue  # never created: nothing is paused there
    action = AdminAction(action=Action.RESUME, agent=agent, by=by, consumers=_names(specs))
    await record(js, settings, action)
    return action


async def drain(nc: Client, settings: MeshSettings, agent: str, *, by: str, timeout: float = 2.0) -> AdminAction:
    """Ask every live instance of `agent` to finish what it holds and exit; record who answered.

    Waits up to `timeout` for the first answer, then a moment more for the other instances.
    """
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    await _audit_stream_exists(js, settings)
    subject = drain_subject(settings.subjects.control(agent))
    answers = await _ask_all(nc, subject, json.dumps({"by": by}).encode(), timeout=timeout)
    instances = sorted(str(a.get("instance", "?")) for a in answers)
    if not instances:
        raise MeshError(f"no instance of {agent!r} answered on {subject} within {timeout:g} s; is it running?")
    note = f"{len(instances)} instance{'s' if len(instances) != 1 else ''}: {', '.join(instances)}"
    action = AdminAction(action=Action.DRAIN, agent=agent, by=by, note=note)
    await record(js, settings, action)
    return action


async def record(js: JetStreamContext, settings: MeshSettings, action: AdminAction) -> PubAck:
    """Store `action` in the admin stream, on `<ns>.admin.<action>.<agent>`."""
    subject = settings.subjects.admin_action(action.action.value, action.agent)
    return await js.publish(
        subject, action.model_dump_json().encode(), headers={"Nats-Msg-Id": admin_action_msg_id(action.id)}
    )


async def history(
    js: JetStreamContext, settings: MeshSettings, *, agent: str | None = None, limit: int | None = None
) -> list[AdminAction]:
    """Recorded actions, oldest first (the newest `limit` when a limit is given)."""
    s = settings.subjects
    subject = s.admin_actions_on(agent) if agent else s.admin_actions
    found = [AdminAction.model_validate_json(msg.data) async for msg in read_stream(js, s.admin_stream, subject)]
    return found[-limit:] if limit else found


async def last_action(js: JetStreamContext, settings: MeshSettings, agent: str) -> AdminAction | None:
    """The newest action on `agent`: one lookup, whatever the action."""
    s = settings.subjects
    try:
        msg = await js.get_last_msg(s.admin_stream, s.admin_actions_on(agent))
    except NotFoundError:  # no action yet, or no admin stream yet
        return None
    return AdminAction.model_validate_json(msg.data)


async def consumer_states(js: JetStreamContext, settings: MeshSettings, agent: str) -> list[ConsumerState]:
    """Whether each work consumer of `agent` is delivering or paused; empty for an unknown agent."""
    try:
        specs = work_consumers(settings, agent)
    except MeshError:
        return []  # an agent from outside this code base: its consumers are not known here
    states = []
    for spec in specs:
        name = f"{spec.stream}/{spec.durable}"
        try:
            info = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            states.append(ConsumerState(name, missing=True))
            continue
        until = info.config.pause_until if info.paused else None
        states.append(ConsumerState(name, paused_until=datetime.fromisoformat(until) if until else None))
    return states


async def _ask_all(nc: Client, subject: str, payload: bytes, *, timeout: float, linger: float = 0.3) -> list[dict]:
    """A request that every listener answers: collect the answers (a plain request keeps only one)."""
    answers: list[dict] = []
    first = asyncio.Event()

    async def collect(msg) -> None:
        try:
            answers.append(json.loads(msg.data))
        except ValueError:
            return
        first.set()

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, payload, reply=inbox)
        try:
            await asyncio.wait_for(first.wait(), timeout)
        except TimeoutError:
            return answers
        await asyncio.sleep(linger)  # the other instances answer within milliseconds
        return answers
    finally:
        await subscription.unsubscribe()


async def _audit_stream_exists(js: JetStreamContext, settings: MeshSettings) -> None:
    # Checked before acting: an action that could not be recorded is not taken.
    stream = settings.subjects.admin_stream
    try:
        await js.stream_info(stream)
    except NotFoundError:
        raise MeshError(
            f"stream {stream}, where operator actions are recorded, does not exist yet; run `mesh provision` "
            "(nothing was changed)"
        ) from None


def _names(specs: list[ConsumerSpec]) -> list[str]:
    return [f"{spec.stream}/{spec.durable}" for spec in specs]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

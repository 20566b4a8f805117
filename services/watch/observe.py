"""What the watch reads from the bus for one check: an `Observation`.

- dead letters stored after the sequence the last `dead_letters` alert counted up to (and within
  the longest a check can be away, `MESH_WATCH_MAX_INTERVAL_SECONDS`, at most);
- outcomes of the last `MESH_WATCH_WINDOW_SECONDS`: the escalated ones, those with a fallback;
- the registry's cards and live instances (KV): expected reviewers — those policy requires
  (`MESH_REQUIRED_SKILLS`) and any agent whose card offers a release review — without a live one;
- since when it has been calm: the last alert's time, or the alerts stream's creation.

Everything is read by message gets and a KV watch (bus/stream_reads.py, bus/directory.py): the
state lives on the bus, so any replica, or a restarted one, sees what the previous check left.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import datetime, timedelta

import structlog
from nats.aio.client import Client
from pydantic import ValidationError

from bus.directory import AgentDirectory
from bus.stream_reads import last_message, read_window
from contracts.alerts import AlertKind, MeshAlert
from contracts.deadletters import DeadLetter
from contracts.outcomes import Outcome, RoundDecided
from coordinator.service import agent_named_after
from services.watch.checks import Observation
from services.watch.settings import WatchSettings

log = structlog.get_logger(__name__)
RELEASE_REVIEW = "release.proposed"


async def observe(nc: Client, settings: WatchSettings, *, now: datetime) -> Observation:
    dead, seq = await new_dead_letters(nc, settings, now=now)
    outcomes = await recent_outcomes(nc, settings, now=now)
    fallbacks = Counter(reviewer for o in outcomes for reviewer in o.fallbacks_applied)
    known, down, required_down = await reviewers_down(nc, settings)
    return Observation(
        at=now,
        window_seconds=settings.watch_window_seconds,
        new_dead_letters=dead,
        dead_letter_seq=seq,
        escalated=[o.release_id for o in outcomes if o.outcome is Outcome.ESCALATED],
        fallbacks=dict(fallbacks),
        fallback_rounds=sum(1 for o in outcomes if o.fallbacks_applied),
        reviewers_down=down,
        required_down=required_down,
        registry_known=known,
        calm_since=await calm_since(nc, settings),
    )


async def new_dead_letters(nc: Client, settings: WatchSettings, *, now: datetime) -> tuple[dict[str, int], int | None]:
    """Dead letters by service since the last `dead_letters` alert, and the last sequence seen."""
    s = settings.subjects
    counted = 0
    if last := await last_message(nc, s.alerts_stream, s.alert(AlertKind.DEAD_LETTERS)):
        with contextlib.suppress(ValidationError):
            counted = MeshAlert.model_validate_json(last.data).dead_letter_seq or 0
    since = now - timedelta(seconds=max(settings.watch_max_interval_seconds, settings.watch_window_seconds))
    records = await read_window(nc, s.dead_letter_stream, s.dead_letters, start=since, after_seq=counted)
    by_service: Counter[str] = Counter()
    for msg in records:
        try:
            by_service[DeadLetter.model_validate_json(msg.data).service] += 1
        except ValidationError:
            by_service[msg.subject.rsplit(".", 1)[-1]] += 1
    return dict(by_service), (records[-1].seq if records else None)


async def recent_outcomes(nc: Client, settings: WatchSettings, *, now: datetime) -> list[RoundDecided]:
    s = settings.subjects
    since = now - timedelta(seconds=settings.watch_window_seconds)
    outcomes = []
    for msg in await read_window(nc, s.outcomes_stream, s.rounds_decided, start=since):
        with contextlib.suppress(ValidationError):
            outcomes.append(RoundDecided.model_validate_json(msg.data))
    return outcomes


async def reviewers_down(nc: Client, settings: WatchSettings) -> tuple[bool, list[str], list[str]]:
    """(registry readable, expected reviewers without a live instance, of those the required ones)."""
    required = {agent_named_after(skill) for skill in settings.required_skills}
    try:
        directory = await AgentDirectory.watch(nc, settings)
    except Exception as exc:  # noqa: BLE001 - an unreadable registry is "unknown", never "everyone is down"
        log.warning("watch.registry_unreadable", error=f"{type(exc).__name__}: {exc}")
        return False, [], []
    try:
        reviewers = required | {name for name, card in directory.cards.items() if card.has_skill_for(RELEASE_REVIEW)}
        down = sorted(name for name in reviewers if not directory.live_instances(name))
    finally:
        await directory.close()
    return True, down, sorted(required.intersection(down))


async def calm_since(nc: Client, settings: WatchSettings) -> datetime | None:
    """When the last alert was raised, or, before any, when the alerts stream was created."""
    s = settings.subjects
    if last := await last_message(nc, s.alerts_stream, s.alerts):
        return last.time
    return (await nc.jetstream().stream_info(s.alerts_stream)).created

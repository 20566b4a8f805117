"""What the digest reads from the bus: a window's outcomes, dead letters and alerts, and what an
earlier delivery of the same tick (or the same window) already did.

Every read is a message get by time or by subject (bus/stream_reads.py): nothing is consumed, so
the digest takes nothing from anyone, and its identity needs only `reads_stream` on each stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from nats.aio.client import Client
from pydantic import ValidationError

from bus.settings import BusSettings
from bus.stream_reads import StoredMessage, last_message, read_window
from contracts.alerts import MeshAlert
from contracts.deadletters import DeadLetter
from contracts.digests import DigestDelivered, DigestPublished
from contracts.outcomes import RoundDecided
from services.digest.figures import Window

log = structlog.get_logger(__name__)


@dataclass
class WindowContents:
    """The window's outcomes (stream order), the service of each dead letter, the kind of each alert."""

    outcomes: list[RoundDecided] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    unreadable: int = 0  # outcomes that did not validate: left out, and logged


async def read_contents(nc: Client, settings: BusSettings, window: Window) -> WindowContents:
    s = settings.subjects
    contents = WindowContents()
    span = {"start": window.start, "end": window.end}
    for msg in await read_window(nc, s.outcomes_stream, s.rounds_decided, **span):
        try:
            contents.outcomes.append(RoundDecided.model_validate_json(msg.data))
        except ValidationError:
            contents.unreadable += 1
    for msg in await read_window(nc, s.dead_letter_stream, s.dead_letters, **span):
        contents.dead_letters.append(_field_or_token(msg, DeadLetter, "service"))
    for msg in await read_window(nc, s.alerts_stream, s.alerts, **span):
        contents.alerts.append(_field_or_token(msg, MeshAlert, "kind"))
    if contents.unreadable:
        log.warning("digest.unreadable_outcomes", count=contents.unreadable, window_end=window.end.isoformat())
    return contents


async def recorded_delivery(nc: Client, settings: BusSettings, tick_id: str) -> DigestDelivered | None:
    """The delivery record of tick `tick_id`, if an earlier delivery of the tick got that far."""
    s = settings.subjects
    msg = await last_message(nc, s.digests_stream, s.digest_delivered(tick_id))
    return DigestDelivered.model_validate_json(msg.data) if msg else None


async def published_digest(nc: Client, settings: BusSettings, window: Window) -> DigestPublished | None:
    """The digest of `window`, when it is the last one published (an earlier delivery of the tick
    published it, perhaps longer ago than the stream's duplicate window)."""
    s = settings.subjects
    msg = await last_message(nc, s.digests_stream, s.digest_published)
    if msg is None:
        return None
    try:
        digest = DigestPublished.model_validate_json(msg.data)
    except ValidationError:
        return None
    return digest if (digest.window_start, digest.window_end) == (window.start, window.end) else None


def _field_or_token(msg: StoredMessage, model: type, name: str) -> str:
    """`name` of the record, or the subject's last token (the service, the kind) if it does not parse."""
    try:
        return str(getattr(model.model_validate_json(msg.data), name))
    except ValidationError:
        return msg.subject.rsplit(".", 1)[-1]

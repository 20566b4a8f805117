"""The steward's long-term memory: the history stream, searched by service, rule, outcome and time.

Each decided release is one `DecisionRecorded` on `<ns>.history.decided.<service>` (published by
the steward, services/steward/apply.py). The stream keeps at most 5000 per service for a year
(bus/provision.py), so one service's whole history is a bounded read: a search reads its subject
from `since` (the stream's own time, which the server seeks to) with batched direct gets — no
consumer, nothing left behind — keeps the newest `limit` records that match, and stops at
`until`, at the end, or after `max_scan` records (then it says `truncated`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client
from pydantic import ValidationError

from bus.errors import MeshError
from contracts.outcomes import Outcome
from contracts.stewardship import DecisionRecorded
from contracts.subjects import Subjects

BATCH = 256  # records per direct-get request
_API = "$JS.API.DIRECT.GET"


class HistoryUnavailable(MeshError):
    """The history stream did not answer a search."""


@dataclass(frozen=True)
class HistoryQuery:
    """Which records of one service's history to return (the newest `limit` that match)."""

    rule: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 20

    def matches(self, record: DecisionRecorded) -> bool:
        if self.rule is not None and self.rule not in record.rules:
            return False
        return self.outcome is None or record.outcome is self.outcome


@dataclass(frozen=True)
class HistoryPage:
    records: list[DecisionRecorded]  # newest first
    scanned: int
    truncated: bool


class History:
    """The history stream as the steward searches it: by service name, over its own connection."""

    def __init__(self, connection: Callable[[], Client], subjects: Subjects, *, max_scan: int) -> None:
        self.connection = connection
        self.subjects = subjects
        self.max_scan = max_scan

    async def search(self, service: str, query: HistoryQuery) -> HistoryPage:
        """The newest records of the service named `service` that match `query`."""
        return await search(
            self.connection(),
            stream=self.subjects.history_stream,
            subject=self.subjects.decision_recorded(service),
            query=query,
            max_scan=self.max_scan,
        )


async def search(
    nc: Client,
    *,
    stream: str,
    subject: str,
    query: HistoryQuery,
    max_scan: int,
    timeout: float = 2.0,
) -> HistoryPage:
    """The newest `query.limit` records on `subject` that match `query`."""
    kept: deque[DecisionRecorded] = deque(maxlen=query.limit)
    scanned, truncated = 0, False
    async with aclosing(_read(nc, stream, subject, since=query.since, timeout=timeout)) as stored:
        async for at, data in stored:
            if query.until is not None and at > query.until:
                break
            if scanned >= max_scan:
                truncated = True
                break
            scanned += 1
            try:
                record = DecisionRecorded.model_validate_json(data)
            except ValidationError:
                continue  # the steward wrote every record; one that does not parse is skipped, not fatal
            if query.matches(record):
                kept.append(record)
    return HistoryPage(list(reversed(kept)), scanned, truncated)


async def _read(nc: Client, stream: str, subject: str, *, since: datetime | None, timeout: float):
    """Every message on `subject` from `since` (or the start), oldest first, as (stored at, data)."""
    inbox = nc.new_inbox()
    replies = await nc.subscribe(inbox)
    start: dict = {"start_time": since.isoformat()} if since else {"seq": 1}
    try:
        while True:
            request = {"batch": BATCH, "next_by_subj": subject, **start}
            await nc.publish(f"{_API}.{stream}", json.dumps(request).encode(), reply=inbox)
            last_seq, more = None, False
            while True:
                try:
                    msg = await replies.next_msg(timeout=timeout)
                except TimeoutError as exc:
                    raise HistoryUnavailable(
                        f"the history stream {stream} did not answer within {timeout:g} s; try again, "
                        "or check that `mesh provision` created it"
                    ) from exc
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "204":  # end of this batch
                    break
                if status == "404":  # nothing (more) on the subject
                    return
                if status == "503":  # nobody answers direct gets for that name
                    raise HistoryUnavailable(f"the history stream {stream} is not there; `mesh provision` creates it")
                if status:
                    raise HistoryUnavailable(f"the history stream {stream} answered status {status}; try again")
                last_seq = int(headers["Nats-Sequence"])
                more = int(headers.get("Nats-Num-Pending", "0")) > 0
                yield _stored_at(headers["Nats-Time-Stamp"]), msg.data
            if last_seq is None or not more:
                return
            start = {"seq": last_seq + 1}
    finally:
        await replies.unsubscribe()


def _stored_at(stamp: str) -> datetime:
    """`2026-11-27T23:17:14.619006134Z` (nanoseconds) as a datetime (microseconds)."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00" if fraction else f"{head}+00:00")

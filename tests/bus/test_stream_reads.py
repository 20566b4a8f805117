"""bus/stream_reads.py against a real nats-server: a time window of a stream, read by message gets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest

from bus.provision import provision
from bus.stream_reads import StreamReadFailed, _ranges, last_message, read_window


@pytest.fixture
async def nc(settings):
    """A harness connection, with the namespace's streams provisioned."""
    connection = await nats.connect(settings.nats_url)
    await provision(connection.jetstream(), settings, [], reconcile=False)
    yield connection
    await connection.close()


async def publish(nc, subject: str, count: int, *, start: int = 0) -> None:
    js = nc.jetstream()
    for i in range(start, start + count):
        await js.publish(subject, f"m{i}".encode(), headers={"Nats-Msg-Id": f"{subject}:{i}"})


async def test_a_window_holds_exactly_the_messages_stored_in_it_on_the_subject(nc, settings):
    """Messages before the start, after the end and on other subjects are left out; the rest
    come oldest first with their sequence, subject, time and headers."""
    s = settings.subjects
    await publish(nc, s.dead_letter("early"), 3)
    await asyncio.sleep(0.05)
    start = datetime.now(UTC)
    await publish(nc, s.dead_letter("security"), 4)
    await publish(nc, s.dead_letter("coordinator"), 2)
    await asyncio.sleep(0.05)
    end = datetime.now(UTC)
    await publish(nc, s.dead_letter("late"), 3)

    every = await read_window(nc, s.dead_letter_stream, s.dead_letters, start=start, end=end)
    security = await read_window(nc, s.dead_letter_stream, s.dead_letter("security"), start=start)

    assert [m.subject.rsplit(".", 1)[-1] for m in every] == ["security"] * 4 + ["coordinator"] * 2
    assert [m.seq for m in every] == list(range(4, 10))
    assert all(start <= m.time < end for m in every)
    assert every[0].data == b"m0" and every[0].headers == {"Nats-Msg-Id": f"{s.dead_letter('security')}:0"}
    assert [m.data for m in security] == [b"m0", b"m1", b"m2", b"m3"]


async def test_a_long_window_is_read_whole_by_walkers_side_by_side(nc, settings):
    """Two thousand messages, read by four walkers, come back complete and in order."""
    s = settings.subjects
    start = datetime.now(UTC) - timedelta(seconds=1)
    await asyncio.gather(*(publish(nc, s.dead_letter(f"svc{k}"), 500, start=k * 500) for k in range(4)))

    found = await read_window(nc, s.dead_letter_stream, s.dead_letters, start=start, walkers=4)

    assert [m.seq for m in found] == list(range(1, 2001))


async def test_after_seq_skips_what_was_counted_and_an_empty_window_is_empty(nc, settings):
    """`after_seq` starts after a sequence; a window with nothing in it, or a stream without
    the subject, gives an empty list, and the last message of a wildcard is the newest."""
    s = settings.subjects
    start = datetime.now(UTC) - timedelta(seconds=1)
    await publish(nc, s.dead_letter("a"), 5)

    after = await read_window(nc, s.dead_letter_stream, s.dead_letters, start=start, after_seq=3)
    future = await read_window(nc, s.dead_letter_stream, s.dead_letters, start=datetime.now(UTC) + timedelta(hours=1))
    nothing = await read_window(nc, s.alerts_stream, s.alerts, start=start)
    last = await last_message(nc, s.dead_letter_stream, s.dead_letters)

    assert [m.seq for m in after] == [4, 5]
    assert future == [] and nothing == []
    assert last.seq == 5 and await last_message(nc, s.alerts_stream, s.alerts) is None


async def test_a_missing_stream_fails_with_a_message_that_says_what_to_do(nc, settings):
    """Reading a stream that does not exist raises StreamReadFailed naming the stream."""
    with pytest.raises(StreamReadFailed, match="NO_SUCH_STREAM"):
        await read_window(nc, "NO_SUCH_STREAM", "x.>", start=datetime.now(UTC))


@pytest.mark.parametrize(
    ("low", "high", "walkers", "expected"),
    [
        (1, 0, 4, []),
        (1, 10, 4, [(1, 10)]),
        (1, 1024, 4, [(1, 256), (257, 512), (513, 768), (769, 1024)]),
        (5, 600, 8, [(5, 302), (303, 600)]),
    ],
)
def test_ranges_cut_a_span_into_at_most_walkers_pieces_of_a_useful_size(low, high, walkers, expected):
    """Short spans are one piece; long ones are cut evenly, every sequence in exactly one piece."""
    assert _ranges(low, high, walkers) == expected

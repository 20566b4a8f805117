"""The rate gate: in-flight, requests/min and tokens/min per (provider, model), on a fake clock."""

import asyncio

import pytest

from services.llm.errors import LLMConfigError, NoTimeLeft
from services.llm.gate import Gate, Gates, Limits, TokenBucket, limits_resolver, parse_limits


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_a_bucket_queues_reservations_first_come_first_served():
    """Each reservation past the burst waits one refill interval longer than the one before."""
    t = FakeTime()
    bucket = TokenBucket(120, burst_seconds=1.0, clock=t.clock)  # 2 per second, burst 2
    waits = []
    for _ in range(5):
        waits.append(bucket.delay(1, t.now))
        bucket.take(1, t.now)
    assert waits == [0.0, 0.0, 0.5, 1.0, 1.5]


async def test_calls_wait_for_request_budget_instead_of_going_out_at_once():
    """Ten calls arriving together at a 60 rpm gate are spaced one second apart, in arrival order."""
    t = FakeTime()
    waits: list[float] = []

    async def record(seconds: float) -> None:  # all ten reserve at the same instant
        waits.append(seconds)

    gate = Gate(Limits(max_in_flight=100, rpm=60, tpm=1e9), clock=t.clock, sleep=record)

    async def call():
        async with gate.slot(tokens=10, deadline=t.now + 60):
            pass

    await asyncio.gather(*(call() for _ in range(10)))
    assert waits == [float(n) for n in range(1, 10)]  # the first went at once


async def test_token_budget_paces_large_prompts_and_settle_gives_back_the_overestimate():
    """A 6,000 tpm gate admits 1,000 estimated tokens each 10 s; settling at 100 frees the rest."""
    t = FakeTime()
    gate = Gate(Limits(max_in_flight=10, rpm=1e6, tpm=6000), clock=t.clock, sleep=t.sleep, token_burst_seconds=1)
    async with gate.slot(tokens=1000, deadline=t.now + 100):
        pass  # capacity is 100 tokens: the first call already waited for its 1,000
    assert t.slept == [pytest.approx(9.0)]
    async with gate.slot(tokens=1000, deadline=t.now + 100) as permit:
        assert gate.tokens.level == pytest.approx(-1000)  # waited 10 s for its 1,000
        permit.settle(100)  # the real usage: 900 tokens come back
    assert gate.tokens.level == pytest.approx(-100)


async def test_no_more_than_max_in_flight_calls_run_together():
    """With max_in_flight=3, the fourth call waits until one of three finishes."""
    gate = Gate(Limits(max_in_flight=3, rpm=1e6, tpm=1e9))
    running = peak = 0

    async def call():
        nonlocal running, peak
        async with gate.slot(tokens=1, deadline=asyncio.get_running_loop().time() + 60):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(call() for _ in range(10)))
    assert peak == 3 and gate.peak_in_flight == 3


async def test_a_wait_past_the_deadline_is_refused_without_taking_budget():
    """When the gate could only admit the call after its deadline, NoTimeLeft, and the budget is untouched."""
    t = FakeTime()
    gate = Gate(Limits(max_in_flight=5, rpm=6, tpm=1e9), clock=t.clock, sleep=t.sleep)
    async with gate.slot(tokens=1, deadline=t.now + 60):
        pass
    level = gate.requests.level
    with pytest.raises(NoTimeLeft, match="would not admit the call for 10.0 s"):
        async with gate.slot(tokens=1, deadline=t.now + 5):
            pass
    assert gate.requests.level == level and t.slept == []


async def test_busy_slots_until_the_deadline_are_refused():
    """A call that cannot get an in-flight slot before its deadline gets NoTimeLeft."""
    gate = Gate(Limits(max_in_flight=1, rpm=1e6, tpm=1e9))
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    async def hold():
        async with gate.slot(tokens=1, deadline=loop.time() + 60):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(NoTimeLeft, match="in-flight slots stayed busy"):
        async with gate.slot(tokens=1, deadline=gate.clock() + 0.05):
            pass
    release.set()
    await holder


async def test_a_pause_after_retry_after_holds_every_caller():
    """After `pause(3)` (a 429's retry-after) the next call waits the 3 s even with budget left."""
    t = FakeTime()
    gate = Gate(Limits(max_in_flight=5, rpm=6000, tpm=1e9), clock=t.clock, sleep=t.sleep)
    gate.pause(3)
    async with gate.slot(tokens=1, deadline=t.now + 60):
        pass
    assert sum(t.slept) == pytest.approx(3.0)


def test_gates_are_one_per_provider_and_model_with_per_model_limits():
    """The same (provider, model) gets the same gate; a model's overrides beat the defaults."""
    resolve = limits_resolver(Limits(8, 50, 50_000), parse_limits("claude-haiku-4-5=rpm:150/in_flight:16"))
    gates = Gates(resolve)
    haiku = gates.gate("anthropic", "claude-haiku-4-5")
    assert gates.gate("anthropic", "claude-haiku-4-5") is haiku
    assert haiku.limits == Limits(max_in_flight=16, rpm=150, tpm=50_000)
    assert gates.gate("anthropic", "claude-sonnet-4-6").limits == Limits(8, 50, 50_000)


def test_limits_parse_from_json_and_reject_nonsense_naming_the_setting():
    """JSON and compact forms agree; unknown keys and bad numbers name MESH_LLM_LIMITS."""
    assert parse_limits('{"m": {"rpm": 10, "tpm": 500, "in_flight": 2}}') == {
        "m": {"rpm": 10.0, "tpm": 500.0, "max_in_flight": 2.0}
    }
    for bad, message in [
        ("m=rps:3", "unknown limit 'rps'"),
        ("m=rpm:x", "rpm must be a number"),
        ("m=rpm:0", "must be above 0"),
        ("m", "should look like"),
        ("{oops", "not valid JSON"),
    ]:
        with pytest.raises(LLMConfigError, match=message) as info:
            parse_limits(bad)
        assert "MESH_LLM_LIMITS" in str(info.value)

"""A rate gate per (provider, model): calls wait for budget instead of provoking 429s.

Three limits, all from configuration: requests in flight, requests per minute and tokens per
minute. Tokens are what Anthropic counts against its limits (uncached input, cache writes and
output; cache reads are free of limits) — estimated before a call, settled with the real usage
after it. A 429 with `retry-after` pauses the whole gate, since every other caller would hit
the same wall.

The gate is per process and shared by all of a service's handlers. The provider's limit is per
API key: give each process its share (`MESH_LLM_RPM` = key limit ÷ processes using the key).

    async with gates.gate("anthropic", "claude-sonnet-4-6").slot(tokens=1500, deadline=d) as permit:
        response = await call()
        permit.settle(actual_tokens)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from services.llm.errors import LLMConfigError, NoTimeLeft
from services.llm.setting_text import compact_entries, json_setting

_FIELD = "MESH_LLM_LIMITS"
_KEYS = {"rpm": "rpm", "tpm": "tpm", "in_flight": "max_in_flight", "max_in_flight": "max_in_flight"}


@dataclass(frozen=True)
class Limits:
    """One model's limits for this process."""

    max_in_flight: int = 8
    rpm: float = 50.0
    tpm: float = 50_000.0


class TokenBucket:
    """A token bucket that takes reservations: the level may go below zero, and a later caller
    waits behind that debt, so waiters are served first come, first served without a lock.

    Capacity is `burst_seconds` worth of refill (at least 1), so a quiet gate never releases a
    minute's worth of calls at once.
    """

    def __init__(self, per_minute: float, *, burst_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.clock = clock
        self.updated = clock()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def delay(self, amount: float, now: float) -> float:
        """Seconds until `amount` could be taken, counting everyone already queued."""
        self._refill(now)
        return max(0.0, (amount - self.level) / self.rate)

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return tokens reserved but not used (or take more when `amount` < 0)."""
        self.level = min(self.capacity, self.level + amount)


class Permit:
    """Handed out by `Gate.slot`; `settle` corrects the token estimate with the real count."""

    def __init__(self, gate: Gate, estimated: int) -> None:
        self.gate = gate
        self.estimated = estimated

    def settle(self, actual: int) -> None:
        self.gate.tokens.give_back(self.estimated - actual)
        self.estimated = actual


class Gate:
    """The limits of one (provider, model) in this process."""

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        burst_seconds: float = 1.0,
        token_burst_seconds: float = 10.0,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        # Requests are smoothed to one second's worth (providers also enforce over short
        # intervals); tokens get more room, or one large prompt would wait behind itself.
        self.requests = TokenBucket(limits.rpm, burst_seconds=burst_seconds, clock=clock)
        self.tokens = TokenBucket(limits.tpm, burst_seconds=token_burst_seconds, clock=clock)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """The provider said `retry-after`: nobody calls this model before then."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    @contextlib.asynccontextmanager
    async def slot(self, *, tokens: int, deadline: float) -> AsyncIterator[Permit]:
        """Wait for an in-flight slot and for request and token budget, then yield a permit.

        Raises NoTimeLeft, without taking any budget, when the wait would pass `deadline`.
        """
        await self._acquire_slot(deadline)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self._wait_for_budget(tokens, deadline)
            permit = Permit(self, tokens)
            yield permit
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _acquire_slot(self, deadline: float) -> None:
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise NoTimeLeft("no time was left before the round's deadline")
        try:
            await asyncio.wait_for(self._slots.acquire(), remaining)
        except TimeoutError:
            raise NoTimeLeft(
                f"all {self.limits.max_in_flight} in-flight slots stayed busy until the round's deadline"
            ) from None

    async def _wait_for_budget(self, tokens: int, deadline: float) -> None:
        now = self.clock()
        wait = max(self._paused_until - now, self.requests.delay(1, now), self.tokens.delay(tokens, now))
        if now + wait > deadline:
            raise NoTimeLeft(
                f"the rate gate ({self.limits.rpm:g} rpm, {self.limits.tpm:g} tpm) would not admit the call "
                f"for {wait:.1f} s, past the round's deadline"
            )
        self.requests.take(1, now)
        self.tokens.take(tokens, now)
        if wait > 0:
            await self.sleep(wait)
        # A 429 may have paused the gate while we waited.
        while (hold := self._paused_until - self.clock()) > 0:
            if self.clock() + hold > deadline:
                raise NoTimeLeft(f"the provider asked to wait {hold:.1f} s, past the round's deadline")
            await self.sleep(hold)


class Gates:
    """One gate per (provider, model), created on first use from `limits_for(model)`."""

    def __init__(
        self,
        limits_for: Callable[[str], Limits],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits_for = limits_for
        self.clock = clock
        self.sleep = sleep
        self._gates: dict[tuple[str, str], Gate] = {}

    def gate(self, provider: str, model: str) -> Gate:
        key = (provider, model)
        if key not in self._gates:
            self._gates[key] = Gate(self.limits_for(model), clock=self.clock, sleep=self.sleep)
        return self._gates[key]


def parse_limits(value: str) -> dict[str, dict[str, float]]:
    """Per-model overrides in `MESH_LLM_LIMITS`: JSON `{"model": {"rpm": 150, "tpm": 80000,
    "in_flight": 16}}` or compact `model=rpm:150/tpm:80000/in_flight:16`, comma-separated."""
    value = value.strip()
    if not value:
        return {}
    raw = json_setting(value, _FIELD)
    if raw is not None:
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise LLMConfigError(f"{_FIELD} must be a JSON object of model -> {{rpm, tpm, in_flight}}.")
    else:
        raw = {}
        for item in compact_entries(value):
            model, sep, spec = item.partition("=")
            pairs = [pair.partition(":") for pair in spec.split("/") if pair]
            if not sep or not model.strip() or not pairs or any(not colon for _, colon, _ in pairs):
                raise LLMConfigError(f"{_FIELD} entry {item!r} should look like model=rpm:150/tpm:80000/in_flight:16.")
            raw[model.strip()] = {key.strip(): number for key, _, number in pairs}
    parsed: dict[str, dict[str, float]] = {}
    for model, spec in raw.items():
        entry: dict[str, float] = {}
        for key, number in spec.items():
            if key not in _KEYS:
                raise LLMConfigError(f"{_FIELD} for {model!r}: unknown limit {key!r}; use rpm, tpm or in_flight.")
            try:
                number = float(number)
            except (TypeError, ValueError):
                raise LLMConfigError(f"{_FIELD} for {model!r}: {key} must be a number.") from None
            if number <= 0:
                raise LLMConfigError(f"{_FIELD} for {model!r}: {key} must be above 0.")
            entry[_KEYS[key]] = number
        parsed[model] = entry
    return parsed


def limits_resolver(defaults: Limits, overrides: dict[str, dict[str, float]]) -> Callable[[str], Limits]:
    """`limits_for(model)`: the defaults with the model's overrides applied."""

    def limits_for(model: str) -> Limits:
        spec = overrides.get(model, {})
        return Limits(
            max_in_flight=int(spec.get("max_in_flight", defaults.max_in_flight)),
            rpm=spec.get("rpm", defaults.rpm),
            tpm=spec.get("tpm", defaults.tpm),
        )

    return limits_for

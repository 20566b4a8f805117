"""The checks every request passes at the gateway's door, in order: who is calling (401), may
they do this (403), have they asked too often (429). What fails is a `Refusal`, answered as a
problem by the app; nothing behind the door runs for a refused request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from services.gateway.auth import Authenticator, Unauthenticated
from services.gateway.callers import Caller
from services.gateway.front import Front
from services.gateway.limits import HeldRequests, LimitExceeded, LimitsUnavailable, RateLimiter
from services.gateway.settings import GatewaySettings


@dataclass
class Refusal(Exception):
    """A request the gateway will not serve: its status, a sentence for the caller, headers."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


_BEARER = {"WWW-Authenticate": 'Bearer realm="agent-mesh"'}


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds + 0.49)))}


class Door:
    """Authentication, authorization and ingress limits, with the bus state they share."""

    def __init__(self, settings: GatewaySettings, front: Front) -> None:
        self.settings = settings
        self.front = front
        self.authenticator = Authenticator(settings)
        self._rates: RateLimiter | None = None
        self._held: HeldRequests | None = None

    async def _limits(self) -> tuple[RateLimiter, HeldRequests]:
        if self._rates is None or self._held is None:
            kv = await self.front.gateway_kv()
            s = self.settings
            self._rates = RateLimiter(kv, limit=s.gateway_rate_limit, window=s.gateway_rate_window_seconds)
            self._held = HeldRequests(kv, per_client=s.gateway_held_per_client, lease=s.gateway_held_lease_seconds)
        return self._rates, self._held

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller the request's credential proves. Two credential headers of the same name are
        refused: a proxy adding its own would otherwise make the routes disagree on who called."""
        getlist = getattr(headers, "getlist", None)
        if getlist and (len(getlist("authorization")) > 1 or len(getlist("x-api-key")) > 1):
            raise Refusal(401, "send one credential, in one Authorization (or X-API-Key) header", _BEARER)
        try:
            return await self.authenticator.authenticate(headers)
        except Unauthenticated as exc:
            raise Refusal(401, exc.detail, _BEARER) from None

    async def identify(self, headers: Mapping[str, str]) -> Caller:
        """The caller, counted against its rate (for entrances that check scopes themselves: A2A)."""
        caller = await self.authenticate(headers)
        await self.count(caller.client)
        return caller

    async def admit(self, headers: Mapping[str, str], scope: str) -> Caller:
        """The caller, if it may do `scope` and is within its rate; else a Refusal."""
        caller = await self.authenticate(headers)
        if not caller.allows(scope):
            raise Refusal(403, f"{caller.id} lacks the scope {scope!r}; ask for a credential that grants it")
        await self.count(caller.client)
        return caller

    async def count(self, client: str) -> None:
        """One request of `client` against its rate, on every replica's count."""
        rates, _ = await self._limits()
        try:
            await rates.admit(client)
        except LimitExceeded as exc:
            raise Refusal(429, exc.detail, _retry_after(exc.retry_after)) from None
        except LimitsUnavailable as exc:  # fail closed: an uncounted request would lift the limit
            raise Refusal(503, exc.detail, _retry_after(exc.retry_after)) from None

    @asynccontextmanager
    async def held(self, client: str) -> AsyncIterator[None]:
        """One of the client's places for a request held open (`?wait`, event streams)."""
        _, held = await self._limits()
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(held.hold(client))
            except LimitExceeded as exc:
                raise Refusal(429, exc.detail, _retry_after(exc.retry_after)) from None
            except LimitsUnavailable as exc:
                raise Refusal(503, exc.detail, _retry_after(exc.retry_after)) from None
            yield

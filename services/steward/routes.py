"""The steward's HTTP routes: every service, one service, one service's history.

    GET /services                           every service the steward keeps, the riskiest first
    GET /services/{name}                    one service: record, rates, findings, risk and why
    GET /services/{name}/history            its decided releases, newest first:
        ?rule=SEC001&outcome=blocked&since=2026-11-01T00:00:00Z&until=…&limit=20

A name is a service's name (`payments-api`) or its key (the `key` the list shows, for names with
other characters). Bad input is a 400, an unknown service a 404, both problem+json. Every answer
says how fresh it is (`as_of`, `age_seconds`, `source`: `live` on the active instance,
`checkpoint` on a standby, which serves the last checkpoint it restored).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, HTTPException, Path, Query, Request

from bus.api import problem_response
from contracts.envelope import utc_now
from contracts.outcomes import Outcome
from services.steward.apply import service_key
from services.steward.history import HistoryPage, HistoryQuery, HistoryUnavailable
from services.steward.state import ServiceRecord, StewardState
from services.steward.views import detail, freshness, listing

NAME = r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,99}$"
RULE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
HISTORY_FILTERS = {"rule", "outcome", "since", "until", "limit"}

BAD_INPUT = {400: problem_response("A malformed name, or a filter that is malformed or unknown.")}
UNKNOWN = {404: problem_response("The steward has seen no service of that name.")}
UNAVAILABLE = {503: problem_response("The history stream did not answer; try again.")}


class StateView(Protocol):
    """The runtime's handle on the state: the latest in memory, and whether this instance is active."""

    @property
    def current(self) -> StewardState: ...

    @property
    def active(self) -> bool: ...


Search = Callable[[str, HistoryQuery], Any]  # (service name, query) -> awaitable HistoryPage


def steward_routes(
    *, state: StateView, search: Search, max_limit: int, clock: Callable[[], datetime] = utc_now
) -> APIRouter:
    router = APIRouter()

    def fresh(current: StewardState) -> dict[str, Any]:
        return freshness(current, active=state.active, now=clock())

    @router.get("/services", summary="Every service the steward keeps, the riskiest first")
    async def list_services() -> dict:
        return listing(state.current, active=state.active, now=clock())

    @router.get(
        "/services/{name}", summary="One service: its record and risk level", responses={**BAD_INPUT, **UNKNOWN}
    )
    async def get_service(name: Annotated[str, Path(pattern=NAME)]) -> dict:
        current = state.current
        key, record = find(current, name)
        if record is None:
            raise HTTPException(
                404, f"the steward has seen no service named {name!r}; GET /services lists those it keeps"
            )
        return {**detail(key, record), **fresh(current)}

    @router.get(
        "/services/{name}/history",
        summary="A service's decided releases, newest first, by rule, outcome and time",
        responses={**BAD_INPUT, **UNKNOWN, **UNAVAILABLE},
    )
    async def get_history(
        request: Request,
        name: Annotated[str, Path(pattern=NAME)],
        rule: Annotated[
            str | None, Query(pattern=RULE, description="Only releases with a finding of this rule.")
        ] = None,
        outcome: Annotated[Outcome | None, Query(description="Only releases with this outcome.")] = None,
        since: Annotated[datetime | None, Query(description="Decided at or after (RFC 3339; UTC if no zone).")] = None,
        until: Annotated[datetime | None, Query(description="Decided at or before (RFC 3339; UTC if no zone).")] = None,
        limit: Annotated[
            int, Query(ge=1, description="Most records, newest first (MESH_STEWARD_HISTORY_MAX_LIMIT at most).")
        ] = 20,
    ) -> dict:
        unknown = sorted(set(request.query_params) - HISTORY_FILTERS)
        if unknown:
            raise HTTPException(400, f"unknown filter {', '.join(unknown)}; use {', '.join(sorted(HISTORY_FILTERS))}")
        if limit > max_limit:
            raise HTTPException(400, f"limit: at most {max_limit} records a request; page with since and until")
        since, until = _utc(since), _utc(until)
        if since and until and since > until:
            raise HTTPException(400, f"since ({since.isoformat()}) is after until ({until.isoformat()})")
        current = state.current
        key, record = find(current, name)
        query = HistoryQuery(rule=rule, outcome=outcome, since=since, until=until, limit=limit)
        try:
            page: HistoryPage = await search(record.name if record else name, query)
        except HistoryUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        if record is None and not page.records and not page.scanned:
            raise HTTPException(404, f"the steward has no history of a service named {name!r}")
        return {
            "service": record.name if record else name,
            "key": key,
            "records": [r.model_dump(mode="json", exclude=_ENVELOPE) for r in page.records],
            "count": len(page.records),
            "scanned": page.scanned,
            "truncated": page.truncated,
            "query": {
                "rule": rule,
                "outcome": outcome.value if outcome else None,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "limit": limit,
            },
        }

    return router


def find(state: StewardState, name: str) -> tuple[str, ServiceRecord | None]:
    """The service called `name`, or whose key is `name`: (its key, its record or None)."""
    key = service_key(name)
    if key in state.services:
        return key, state.services[key]
    if name in state.services:
        return name, state.services[name]
    return key, None


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


_ENVELOPE = {"correlation_id", "causation_id", "producer", "on_behalf_of", "schema_version"}

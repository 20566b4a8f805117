"""NATS micro discovery (ADR-32) for a service whose work arrives by JetStream pull.

Standard NATS tooling (`nats micro ls|info|stats`, the Go and JavaScript clients' service
APIs) asks `$SRV.PING|INFO|STATS[.<name>[.<id>]]` and expects each service to list its
endpoints with their counts. nats-py's `nats.micro` only counts endpoints it serves itself,
as request/reply subscriptions, and an agent has none: its work comes from durable pull
consumers (bus/consuming.py). So each consumer is listed as what it is — an endpoint whose
subject is the consumer's filter and whose queue group is the durable its replicas share
(the micro meaning of a queue group: one member gets each message) — with the stream,
durable and contract in its metadata (and the contract's schema, a path on the instance's HTTP
API, whose address is the service's `url` metadata), and its counts come from the consume path:

- `num_requests`: deliveries handled, whatever their end (acked, retried, dead-lettered);
- `num_errors`, `last_error`: those not acked, and why the last one was not;
- `processing_time`, `average_processing_time`: nanoseconds from receiving to settling.

The answers keep the shapes of nats-py's own (`io.nats.micro.v1.*_response`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.micro import ServiceConfig
from nats.micro.service import EndpointInfo, EndpointStats, Service, ServiceInfo, ServiceStats


@dataclass
class Tally:
    """What one consumer has handled so far (the consume path records, discovery reads)."""

    requests: int = 0
    errors: int = 0
    last_error: str = ""
    nanoseconds: int = 0

    def record(self, nanoseconds: int, error: str | None = None) -> None:
        """One delivery settled after `nanoseconds`; `error` says why it was not acked (None: acked)."""
        self.requests += 1
        self.nanoseconds += nanoseconds
        if error is not None:
            self.errors += 1
            self.last_error = error[:300]


@dataclass
class Endpoint:
    """One consumer as micro discovery lists it."""

    name: str  # the durable: unique within the service
    subject: str  # the consumer's filter subject
    queue_group: str  # the durable again: replicas share it, each message goes to one of them
    metadata: dict[str, str] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)

    def info(self) -> EndpointInfo:
        return EndpointInfo(name=self.name, subject=self.subject, queue_group=self.queue_group, metadata=self.metadata)

    def stats(self) -> EndpointStats:
        tally = self.tally
        return EndpointStats(
            name=self.name,
            subject=self.subject,
            queue_group=self.queue_group,
            num_requests=tally.requests,
            num_errors=tally.errors,
            last_error=tally.last_error,
            processing_time=tally.nanoseconds,
            average_processing_time=tally.nanoseconds // tally.requests if tally.requests else 0,
        )


class PulledService(Service):
    """nats-py's micro service (its subjects, ids and JSON), with endpoints it does not serve
    itself: `endpoints()` is read at each INFO and STATS request."""

    def __init__(self, nc: Client, config: ServiceConfig, *, endpoints: Callable[[], list[Endpoint]]) -> None:
        super().__init__(nc, config)
        self._pulled = endpoints

    def info(self) -> ServiceInfo:
        info = super().info()
        info.endpoints = [endpoint.info() for endpoint in self._pulled()]
        return info

    def stats(self) -> ServiceStats:
        stats = super().stats()
        stats.endpoints = [endpoint.stats() for endpoint in self._pulled()]
        return stats


async def serve_discovery(
    nc: Client, config: ServiceConfig, *, endpoints: Callable[[], list[Endpoint]] = list
) -> PulledService:
    """Answer `$SRV.PING|INFO|STATS` for this process until `stop()`."""
    service = PulledService(nc, config, endpoints=endpoints)
    await service.start()
    return service


__all__ = ["Endpoint", "PulledService", "Tally", "serve_discovery"]

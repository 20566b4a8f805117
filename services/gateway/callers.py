"""Who is calling the gateway, and what they may do: the result of authentication."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

READ_RELEASES = "releases:read"


def publish_scope(event_type: str) -> str:
    """The scope that lets a caller publish one event type: `events:release.proposed:publish`."""
    return f"events:{event_type}:publish"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: `id` names it on the events it publishes (`key:ci-pipeline`,
    `jwt:<issuer>#<subject>`, `webhook:<source>`); `client` is what rate limits count by."""

    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def client(self) -> str:
        return self.id

    def allows(self, scope: str) -> bool:
        """Whether one of the granted scopes covers `scope`: a granted `*` matches anything, so
        `events:*:publish` covers every event type and `*` alone every scope."""
        return any(fnmatchcase(scope, granted) for granted in self.scopes)

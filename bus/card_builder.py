"""Building an agent's A2A card from what the agent declares and where it runs.

The card is derived, never hand-written twice: skills come from the service module, the
subjects it consumes and publishes from its subscriptions, the URLs from the settings.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

from bus.settings import BusSettings
from contracts.cards import (
    HTTP_BINDING,
    NATS_BINDING,
    SCHEMAS_EXTENSION,
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentProvider,
    AgentSkill,
)
from contracts.catalog import CONTRACTS

Wire = list[tuple[str, type[BaseModel]]]  # (subject, model)


def mesh_version() -> str:
    try:
        return version("agent-mesh")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def without_credentials(url: str) -> str:
    """`nats://user:secret@host:4222` -> `nats://host:4222`: cards are public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def public_url(settings: BusSettings) -> str:
    """Where this process's HTTP API is reachable by others."""
    if settings.advertise_url:
        return settings.advertise_url.rstrip("/")
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host
    return f"http://{host}:{settings.http_port}"


def contract_name(model: type[BaseModel]) -> str | None:
    return next((c.name for c in CONTRACTS.values() if c.model is model), None)


def build_card(
    *,
    name: str,
    description: str,
    skills: list[AgentSkill],
    consumes: Wire,
    produces: Wire,
    settings: BusSettings,
) -> AgentCard:
    http = public_url(settings)
    consumed = {contract_name(m) or m.__name__: s for s, m in consumes}
    produced = {contract_name(m) or m.__name__: s for s, m in produces}
    binding = (
        NATS_BINDING
        + "?"
        + urlencode({"consumes": ",".join(consumed.values()), "produces": ",".join(produced.values())}, safe=",.>*")
    )
    interfaces = [
        AgentInterface(url=without_credentials(url), protocol_binding=binding) for url in settings.nats_servers
    ]
    interfaces.append(AgentInterface(url=http, protocol_binding=HTTP_BINDING))
    schemas = AgentExtension(
        uri=SCHEMAS_EXTENSION,
        description="JSON Schemas of the messages this agent consumes and produces, by subject.",
        params={
            "consumes": [
                {"contract": c, "subject": s, "schema": f"{http}/schemas/{c}.json"} for c, s in consumed.items()
            ],
            "produces": [
                {"contract": c, "subject": s, "schema": f"{http}/schemas/{c}.json"} for c, s in produced.items()
            ],
        },
    )
    if not skills:  # A2A wants at least one: describe what the agent consumes
        skills = [
            AgentSkill(
                id=name,
                name=name,
                description=description or f"Handles {', '.join(consumed) or 'nothing yet'}.",
                tags=list(consumed) or [name],
            )
        ]
    return AgentCard(
        name=name,
        description=description,
        version=mesh_version(),
        provider=AgentProvider(organization="agent-mesh", url="urn:agent-mesh"),
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(extensions=[schemas]),
        skills=skills,
    )


def etag(document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'

"""Building an agent's A2A card from what the agent declares and where it runs.

The card is derived, never hand-written twice: skills come from the service module, the
subjects it consumes and publishes from its subscriptions, the NATS URLs from the settings.

The card is the *agent's*, shared by all of its instances, so it carries no instance's address:
each instance's HTTP URL lives in its own instance record, which expires with it. `locate(card,
url)` is the card as one instance serves it (its HTTP interface, links to its schemas), built
when it is served: by the instance itself, or by the registry from a live instance's record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
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


def public_url(settings: BusSettings, *, host: str | None = None, port: int | None = None) -> str:
    """Where this process's HTTP API is reachable by others: MESH_ADVERTISE_URL when set, else
    the address its server listens on (`host` and `port` as bound, else the settings')."""
    if settings.advertise_url:
        return settings.advertise_url.rstrip("/")
    host = host or settings.http_host
    port = port if port is not None else settings.http_port
    if host in ("0.0.0.0", "::", ""):  # every interface: loopback is one of them
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
    http_interfaces: Sequence[AgentInterface] = (),
    streaming: bool = False,
    security_schemes: dict[str, dict] | None = None,
    security_requirements: list[dict] | None = None,
) -> AgentCard:
    """The agent's card, as every instance shares it: no HTTP address (see `locate`).

    `http_interfaces` are more interfaces served over HTTP by every instance (the gateway's A2A
    JSON-RPC), each with its path as its `url` (`/a2a`): `locate` makes them absolute."""
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
    schemas = AgentExtension(
        uri=SCHEMAS_EXTENSION,
        description="JSON Schemas of the messages this agent consumes and produces, by subject.",
        params={
            "consumes": [{"contract": c, "subject": s} for c, s in consumed.items()],
            "produces": [{"contract": c, "subject": s} for c, s in produced.items()],
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
        supported_interfaces=[*interfaces, *http_interfaces],
        capabilities=AgentCapabilities(extensions=[schemas], streaming=streaming),
        security_schemes=security_schemes,
        security_requirements=security_requirements,
        skills=skills,
    )


def locate(card: AgentCard, url: str | None) -> AgentCard:
    """The card as the instance at `url` serves it, with its HTTP interface and schema links;
    with `url=None` (no live instance), the card with no address at all."""
    interfaces = [
        i if not i.url.startswith("/") else i.model_copy(update={"url": f"{url}{i.url}"})
        for i in card.supported_interfaces
        if i.protocol_binding != HTTP_BINDING and (url or not i.url.startswith("/"))
    ]
    if url:
        interfaces.append(AgentInterface(url=url, protocol_binding=HTTP_BINDING))

    def linked(extension: AgentExtension) -> AgentExtension:
        if extension.uri != SCHEMAS_EXTENSION or not extension.params:
            return extension
        params = {
            way: [
                {k: v for k, v in entry.items() if k != "schema"}
                | ({"schema": f"{url}/schemas/{entry['contract']}.json"} if url else {})
                for entry in entries
            ]
            for way, entries in extension.params.items()
        }
        return extension.model_copy(update={"params": params})

    capabilities = card.capabilities.model_copy(
        update={"extensions": [linked(e) for e in card.capabilities.extensions]}
    )
    return card.model_copy(update={"supported_interfaces": interfaces, "capabilities": capabilities})


def etag(document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'

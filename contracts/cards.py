"""Agent cards (A2A v1.0 `AgentCard`, camelCase on the wire) and the liveness records beside them.

A card says what an agent is and can do; an *instance* record says that one process of it is
alive right now, where, and how busy. Cards live as long as the agent is deployed; instance
records expire unless their process keeps heartbeating.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# URIs naming what is ours, not A2A's: a custom protocol binding and a card extension.
NATS_BINDING = "urn:agent-mesh:binding:nats-jetstream:v1"
HTTP_BINDING = "urn:agent-mesh:binding:http-ops:v1"
SCHEMAS_EXTENSION = "urn:agent-mesh:ext:message-schemas:v1"
A2A_PROTOCOL_VERSION = "1.0"


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AgentProvider(_Camel):
    organization: str
    url: str


class AgentExtension(_Camel):
    uri: str
    description: str | None = None
    required: bool = False
    params: dict | None = None


class AgentCapabilities(_Camel):
    streaming: bool = False
    push_notifications: bool = False
    extensions: list[AgentExtension] = Field(default_factory=list)
    extended_agent_card: bool = False


class AgentInterface(_Camel):
    url: str
    protocol_binding: str
    protocol_version: str = A2A_PROTOCOL_VERSION


class AgentSkill(_Camel):
    id: str = Field(examples=["review.security"])
    name: str
    description: str
    tags: list[str] = Field(min_length=1, examples=[["review", "release.proposed"]])
    examples: list[str] = Field(default_factory=list)
    input_modes: list[str] = Field(default_factory=lambda: ["application/json"])
    output_modes: list[str] = Field(default_factory=lambda: ["application/json"])


class AgentCard(_Camel):
    """An A2A v1.0 AgentCard with every required field."""

    name: str
    description: str
    supported_interfaces: list[AgentInterface] = Field(min_length=1)
    version: str
    provider: AgentProvider | None = None
    documentation_url: str | None = None
    capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities)
    default_input_modes: list[str] = Field(default_factory=lambda: ["application/json"])
    default_output_modes: list[str] = Field(default_factory=lambda: ["application/json"])
    skills: list[AgentSkill] = Field(min_length=1)
    security_schemes: dict[str, dict] | None = Field(
        default=None,
        description="How to authenticate to the agent's HTTP interfaces, by scheme name (A2A `SecurityScheme`, "
        "camelCase as on the wire); None for an agent reached over NATS only.",
        examples=[{"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "API key or JWT"}}}],
    )
    security_requirements: list[dict] | None = Field(
        default=None,
        description="Which of `security_schemes` a request must satisfy (A2A `SecurityRequirement`).",
        examples=[[{"schemes": {"bearer": {"list": []}}}]],
    )

    def has_skill_for(self, event_type: str, *, tag: str = "review") -> bool:
        """Does any skill carry both `tag` and the event type as tags?"""
        return any(tag in s.tags and event_type in s.tags for s in self.skills)


class AgentInstance(_Camel):
    """One live process of an agent, refreshed on every heartbeat."""

    agent: str
    instance_id: str
    url: str = Field(description="HTTP base URL of this process.")
    started_at: datetime
    heartbeat_at: datetime
    in_flight: int = Field(default=0, description="Messages being handled right now.")
    handled: int = Field(default=0, description="Messages handled since start.")

"""Every service the mesh can run: what `mesh up`, `mesh run` and `mesh provision` know."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, get_type_hints

from bus.settings import BusSettings


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str

    def load(self) -> ModuleType:
        """Import the service module (importing builds nothing; call its `build(settings)`)."""
        return importlib.import_module(self.module)

    def asgi_app(self, settings: BusSettings) -> Any:
        """The service's HTTP app for these settings (FastAPI for the registry, else AsgiFastStream).

        Each service's `build` takes its own layer's settings; the tools pass `MeshSettings`,
        which is every layer's at once."""
        return self.serve(self.load().build(settings))

    def agent(self, settings: BusSettings) -> Any:
        """The service's agent (built, not started). `settings` of another layer (the registry runs
        with `BusSettings`) become this service's own: the bus's values, the rest from the environment."""
        build = self.load().build
        wanted = get_type_hints(build).get("settings", BusSettings)
        if not isinstance(settings, wanted):
            settings = wanted(**settings.model_dump())
        return build(settings)

    def serve(self, agent: Any) -> Any:
        """The HTTP app around an agent built with this service's `build`."""
        serve = getattr(self.load(), "http_app", None)
        return serve(agent) if serve else agent.build_app()


SERVICES: dict[str, ServiceEntry] = {
    s.name: s
    for s in (
        ServiceEntry("registry", "services.registry"),  # agent cards and liveness over HTTP
        ServiceEntry("security", "services.security"),  # security reviewer
        ServiceEntry("compliance", "services.compliance"),  # compliance reviewer
        ServiceEntry("coordinator", "services.coordinator"),  # gathers reviews into one outcome
        ServiceEntry("gateway", "services.gateway.service"),  # HTTP, webhooks and A2A in; outcomes out
        ServiceEntry("steward", "services.steward.service"),  # daemon: each service's record, risk and history
        ServiceEntry("digest", "services.digest.service"),  # scheduled: a digest of the mesh's work, to a webhook
        ServiceEntry("watch", "services.watch.service"),  # self-scheduling: the mesh's health, as mesh.alert events
        ServiceEntry("approvals", "services.approvals.service"),  # tells approvers at a webhook that a release waits
    )
}


def mesh_agents(settings: BusSettings) -> list[Any]:
    """Every service's agent, built and not started: what `mesh asyncapi` and the registry's
    `/asyncapi.json` describe."""
    return [entry.agent(settings) for entry in SERVICES.values()]

"""Every service the mesh can run: what `mesh up`, `mesh run` and `mesh provision` know."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    summary: str
    default_port: int

    @property
    def target(self) -> str:
        return f"{self.module}:app"

    def load(self):
        """Import the service module (importing builds nothing; call its `build(settings)`)."""
        return importlib.import_module(self.module)

    def asgi_app(self, settings):
        """The service's HTTP app for these settings (FastAPI for the registry, else AsgiFastStream)."""
        module = self.load()
        agent = module.build(settings)
        serve = getattr(module, "http_app", None)
        return serve(agent) if serve else agent.build_app()


SERVICES: dict[str, ServiceEntry] = {
    s.name: s
    for s in (
        ServiceEntry("registry", "services.registry", "Agent cards and liveness over HTTP.", 8080),
        ServiceEntry("security", "services.security", "Security reviewer.", 8081),
        ServiceEntry("compliance", "services.compliance", "Compliance reviewer.", 8082),
        ServiceEntry("coordinator", "services.coordinator", "Gathers reviews into one outcome.", 8083),
    )
}

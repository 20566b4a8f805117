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
        """Import the service module (it builds its agent and app from the environment)."""
        return importlib.import_module(self.module)


SERVICES: dict[str, ServiceEntry] = {
    s.name: s
    for s in (
        ServiceEntry("security", "services.security", "Security reviewer.", 8081),
        ServiceEntry("compliance", "services.compliance", "Compliance reviewer.", 8082),
        ServiceEntry("coordinator", "services.coordinator", "Gathers reviews into one outcome.", 8083),
    )
}

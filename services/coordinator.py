"""The coordinator, as a deployable service: `mesh run coordinator`
(or `faststream run services.coordinator:app --port 8083`)."""

from bus.settings import MeshSettings
from coordinator.service import build_coordinator

settings = MeshSettings()
agent = build_coordinator(settings)
app = agent.build_app()

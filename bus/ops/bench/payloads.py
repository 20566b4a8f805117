"""The proposals every system under test sends: one sample release under many release ids.

The reviews are built by the reviewer service's own `review_of` (services/review/reviewer.py)."""

from __future__ import annotations

import json
from importlib.resources import files

from contracts.releases import ReleaseProposed

# Clean, so every round needs both reviews before it is decided: the full flow every time.
SAMPLE = "release_clean.json"


def sample_proposal() -> dict:
    return json.loads((files("contracts") / "samples" / SAMPLE).read_text())


def proposal(release_id: str, template: dict | None = None) -> ReleaseProposed:
    """The sample release under a new id (and a new event id)."""
    return ReleaseProposed.model_validate({**(template or sample_proposal()), "release_id": release_id})

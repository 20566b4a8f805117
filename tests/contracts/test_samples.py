"""contracts/samples: the example proposals shipped with the repo are valid `release.proposed` bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

import contracts
from contracts.releases import ReleaseProposed

SAMPLES = sorted((Path(contracts.__file__).parent / "samples").glob("*.json"))


def test_samples_exist():
    """The repo ships at least one sample proposal to publish."""
    assert SAMPLES


@pytest.mark.parametrize("path", SAMPLES, ids=[path.name for path in SAMPLES])
def test_each_sample_validates_as_a_release_proposal(path):
    """Every sample parses as ReleaseProposed with at least one change."""
    proposal = ReleaseProposed.model_validate_json(path.read_text(encoding="utf-8"))
    assert proposal.correlation_id == proposal.release_id
    assert proposal.changes and all(change.path for change in proposal.changes)

"""services/watch/settings.py: the watch's bounds, and the reviewers it expects, from configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.watch.settings import WatchSettings


def test_a_minimum_above_the_maximum_is_refused_naming_both_variables():
    """Bounds that cannot both hold fail at startup, saying which variables to change."""
    with pytest.raises(ValidationError, match="MESH_WATCH_MIN_INTERVAL_SECONDS .* MESH_WATCH_MAX_INTERVAL_SECONDS"):
        WatchSettings(_env_file=None, watch_min_interval_seconds=600, watch_max_interval_seconds=60)


def test_required_skills_are_the_coordinators_and_read_comma_separated():
    """By default the coordinator's required skills; a comma-separated value is split."""
    assert WatchSettings(_env_file=None).required_skills == ["review.security", "review.compliance"]
    assert WatchSettings(_env_file=None, required_skills="review.security, review.privacy").required_skills == [
        "review.security",
        "review.privacy",
    ]

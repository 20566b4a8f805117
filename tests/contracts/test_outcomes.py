"""contracts/outcomes.py: the fallback vocabulary, as stored and configured."""

from __future__ import annotations

from contracts.outcomes import Fallback


def test_fallbacks_are_the_configured_strings():
    """`MESH_FALLBACKS` values and stored `fallbacks_applied` keep their spelling."""
    assert [f.value for f in Fallback] == ["block", "approve_with_warning", "escalate"]
    assert Fallback("escalate") == "escalate" and f"{Fallback.BLOCK}" == "block"

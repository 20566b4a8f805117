"""A model's words are scrubbed by the generic redactor, not only by the security rules' patterns."""

import pytest

from contracts.releases import Change, ReleaseProposed
from tests.fakes.anthropic_server import tool_call

ECHO = {
    "verdict": "reject",
    "confidence": 0.9,
    "rationale": 'config.py sets DB_PASSWORD = "hunter2" and passwd: tr0ub4dor in plain text.',
    "findings": [{"rule": "SEC008", "severity": "high", "message": "Remove password='hunter2' from config.py."}],
}


def release() -> ReleaseProposed:
    return ReleaseProposed(
        release_id="rel-7",
        service="payments-api",
        version="1.0.1",
        title="Configure the database",
        changes=[Change(path="src/config.py", diff='@@ -1 +1,2 @@\n import os\n+DB_PASSWORD = "hunter2"\n')],
    )


@pytest.mark.parametrize("focus", ["security", "compliance"])
async def test_a_plaintext_password_echoed_by_the_model_is_redacted(api, brain_for, focus):
    """A reply quoting passwords, quoted or bare, leaves the brain with no password (the bare one's key stays)."""
    api.reply(tool_call(ECHO))
    assessment = await brain_for(focus).assess(release())
    assert "hunter2" not in repr(assessment) and "tr0ub4dor" not in repr(assessment)
    assert "passwd: [REDACTED] in plain text" in assessment.rationale

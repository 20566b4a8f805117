"""services/digest/settings.py: a schedule, zone or webhook the digest cannot use fails at startup, naming it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bus.settings import BusSettings
from services.digest.settings import DigestSettings


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("digest_cron", "0 9 * * *", "NATS takes 6, seconds first"),
        ("digest_every", "5 minutes", "is not like `1s`"),
        ("digest_time_zone", "Mars/Olympus", "not an IANA zone name"),
    ],
)
def test_an_unusable_schedule_is_refused_with_what_would_work(field, value, says):
    """A 5-field cron, an interval in words, an unknown zone: a validation error saying what is allowed."""
    with pytest.raises(ValidationError, match=says):
        DigestSettings(_env_file=None, **{field: value})


def test_the_webhook_url_is_a_secret_kept_out_of_reprs_and_child_environments():
    """The URL (it holds Slack's token) never shows in a repr and is not handed to child processes
    as `**********`: they read it from the environment like the API key."""
    settings = DigestSettings(_env_file=None, digest_webhook_url="https://hooks.slack.com/services/T/B/secret")

    assert "secret" not in repr(settings)
    assert settings.digest_webhook_url.get_secret_value().endswith("/secret")
    assert "MESH_DIGEST_WEBHOOK_URL" not in settings.as_env()


def test_a_tick_fits_in_the_handlers_time():
    """The tick's deadline never reaches the handler's timeout: what is left is for the records."""
    assert DigestSettings(_env_file=None).tick_seconds == 90
    assert DigestSettings(_env_file=None, handler_timeout_seconds=30).tick_seconds == 25
    assert isinstance(DigestSettings(_env_file=None), BusSettings)

"""services/digest/message.py: a digest as a Slack incoming-webhook body, within Block Kit's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.digest.figures import Window, digest_of
from services.digest.message import slack_message
from tests.services.digest.samples import outcome, review

WINDOW = Window.ending(datetime(2026, 11, 22, 8, 0, tzinfo=UTC), 24 * 3600)


def test_the_body_is_text_and_blocks_with_every_figure():
    """`text` is the one-line fallback; blocks hold a header with the window in the configured
    time zone, the figures as fields, the escalated releases, findings, dead letters, alerts and
    spend, and a context line naming the digest."""
    digest = digest_of(
        WINDOW,
        [outcome("rel-1", "escalated", review("security", "SEC001", cost=0.25, tokens=9000))],
        ["coordinator"],
        ["reviewer_down"],
    )

    body = slack_message(digest, time_zone="Europe/Berlin")

    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("Mesh digest 2026-11-21 09:00 CET → 2026-11-22 09:00 CET: 1 release (1 escalated)")
    assert "1 still escalated, 1 dead letter, 1 alert, $0.2500 spent" in body["text"]
    header, fields, *sections, context = body["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert {"type": "mrkdwn", "text": "*Escalated*\n1"} in fields["fields"] and len(fields["fields"]) <= 10
    text = "\n".join(block["text"]["text"] for block in sections)
    for expected in (
        "*Still escalated* (1): `rel-1`",
        "`SEC001` (high) in 1 release",
        "coordinator 1",
        "reviewer_down 1",
    ):
        assert expected in text
    assert "security $0.2500 (1 reviews, 9,000 tokens)" in text
    assert context["type"] == "context" and "offline: figures only" in context["elements"][0]["text"]
    assert json.loads(json.dumps(body)) == body


def test_what_came_from_outside_cannot_mention_the_channel_or_forge_a_link():
    """A release id or summary holding `<!channel>` or `<https://evil|click>` arrives escaped."""
    digest = digest_of(WINDOW, [outcome("<!channel>", "escalated")], ["<https://evil|x>"], []).model_copy(
        update={"summary": "All fine <!here> & done", "summary_model": "claude-haiku-4-5"}
    )

    body = json.dumps(slack_message(digest))

    assert "<!" not in body and "<https" not in body
    assert "&lt;!channel&gt;" in body and "All fine &lt;!here&gt; &amp; done" in body
    assert "summary by claude-haiku-4-5" in body


def test_long_lists_are_cut_and_no_section_passes_the_limit():
    """Sixty escalated releases: twenty named, the count says the rest; sections stay under 3,000."""
    digest = digest_of(WINDOW, [outcome(f"release-{i:03d}-" + "x" * 200, "escalated") for i in range(60)], [], [])

    blocks = slack_message(digest)["blocks"]

    escalated = next(b for b in blocks if b.get("text", {}).get("text", "").startswith("*Still escalated*"))
    assert escalated["text"]["text"].endswith("and 50 more")
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if "text" in b and b["type"] == "section")

"""A digest as a Slack-compatible incoming-webhook message: `{"text": …, "blocks": […]}`. Pure.

`text` is the one-line fallback (notifications, clients without blocks); `blocks` is Block Kit.
Everything that came from outside the mesh's own code (release ids, rule ids, service names, a
model's summary) is escaped, so it can neither mention `@channel` nor forge a link, and cut to
Block Kit's limits (3,000 characters a section, 10 fields, 50 blocks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.digests import DigestPublished

SECTION_CHARS = 3000
_LISTED = 10  # entries of each list shown before "and N more"


def slack_message(digest: DigestPublished, *, time_zone: str = "UTC") -> dict[str, Any]:
    """The webhook body for `digest`, its times shown in `time_zone`."""
    zone = ZoneInfo(time_zone)
    span = f"{_when(digest.window_start, zone)} → {_when(digest.window_end, zone)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Mesh digest · {span}"[:150]}},
    ]
    if digest.summary:
        blocks.append(_section(escape(digest.summary)))
    blocks.append({"type": "section", "fields": [_mrkdwn(f"*{name}*\n{value}") for name, value in _figures(digest)]})
    if digest.escalated_total:
        names = [f"`{escape(release)}`" for release in digest.escalated]
        blocks.append(
            _section(f"*Still escalated* ({digest.escalated_total}): {_listed(names, digest.escalated_total)}")
        )
    if digest.top_findings:
        lines = [
            f"`{escape(f.rule)}` ({escape(f.severity)}) in {f.releases} release{'s' if f.releases != 1 else ''}"
            for f in digest.top_findings
        ]
        blocks.append(_section("*Most frequent findings*\n" + "\n".join(lines)))
    if digest.dead_letters_total:
        parts = [f"{escape(service)} {count}" for service, count in digest.dead_letters.items()]
        blocks.append(_section(f"*Dead letters by service*: {_listed(parts, len(parts))}"))
    if digest.alerts_total:
        parts = [f"{escape(kind)} {count}" for kind, count in digest.alerts.items()]
        blocks.append(_section(f"*Alerts from watch*: {_listed(parts, len(parts))}"))
    if digest.costs:
        parts = [
            f"{escape(c.agent)} ${c.cost_usd:.4f} ({c.reviews} reviews, {c.tokens:,} tokens)" for c in digest.costs
        ]
        blocks.append(_section("*Spend by reviewer*\n" + "\n".join(parts[:_LISTED])))
    by = f"summary by {escape(digest.summary_model)}" if digest.summary_model else "offline: figures only"
    context = f"window {_when(digest.window_start, zone)} to {_when(digest.window_end, zone)} · {by} · digest {digest.event_id}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
    return {"text": headline(digest, span), "blocks": blocks[:50]}


def headline(digest: DigestPublished, span: str = "") -> str:
    """One line: the window, the outcomes, dead letters, alerts and cost."""
    kinds = ", ".join(f"{count} {kind}" for kind, count in digest.outcomes.items() if count) or "none decided"
    line = (
        f"Mesh digest{' ' + span if span else ''}: {digest.releases} release"
        f"{'s' if digest.releases != 1 else ''} ({kinds}), {digest.escalated_total} still escalated, "
        f"{digest.dead_letters_total} dead letter{'s' if digest.dead_letters_total != 1 else ''}, "
        f"{digest.alerts_total} alert{'s' if digest.alerts_total != 1 else ''}, ${digest.cost_usd:.4f} spent"
    )
    return escape(line)


def escape(text: str) -> str:
    """Slack's three control characters as entities: no `<!channel>`, no `<url|forged link>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _figures(digest: DigestPublished) -> list[tuple[str, str]]:
    figures = [("Releases decided", str(digest.releases))]
    figures += [(kind.capitalize(), str(count)) for kind, count in digest.outcomes.items()]
    figures += [
        ("Closed by a fallback", str(digest.fallback_rounds)),
        ("Dead letters", str(digest.dead_letters_total)),
        ("Alerts", str(digest.alerts_total)),
        ("Spent", f"${digest.cost_usd:.4f} · {digest.tokens:,} tokens"),
    ]
    return figures[:10]


def _listed(items: list[str], total: int) -> str:
    shown = ", ".join(items[:_LISTED])
    more = total - min(len(items), _LISTED)
    return shown + (f" and {more} more" if more > 0 else "")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _mrkdwn(text: str) -> dict[str, str]:
    if len(text) > SECTION_CHARS:
        text = text[: SECTION_CHARS - 1] + "…"
    return {"type": "mrkdwn", "text": text}


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

"""A notice as Slack reads it (`text` for notifications, `blocks` for the message). Pure."""

from __future__ import annotations

from typing import Any

from contracts.approvals import ApprovalView

MAX_FINDINGS = 5


def slack_message(view: ApprovalView, *, kind: str, link: str | None, seconds_left: float | None = None) -> dict:
    """The Slack-compatible body for `kind` (`requested` or `expiring`) of an approval."""
    release = f"{view.release_id} ({view.service} {view.version})".strip()
    if kind == "expiring":
        left = _duration(seconds_left or 0.0)
        head = f"Approval about to expire: {release}: {left} left, then {view.fallback}"
    else:
        head = f"Approval needed: {release}"
    where = f"<{link}|Decide on the approval page>" if link else f"approval {view.id}"
    who = ", ".join(view.approvers)
    needs = "two different approvers" if view.needed == 2 else "one approver"
    lines = [
        f"*{head}*",
        f"{view.title}" if view.title else "",
        f"Why: {view.reason}",
        f"Needs {needs} of {who}, by {view.deadline.isoformat(timespec='minutes')} (then {view.fallback}).",
    ]
    findings = [
        f"• [{f.severity}] {f.rule} {f.path or '-'}{f':{f.line}' if f.line else ''} ({f.reviewer}): {f.message}"
        for f in view.findings[:MAX_FINDINGS]
    ]
    if len(view.findings) > MAX_FINDINGS:
        findings.append(f"… and {len(view.findings) - MAX_FINDINGS} more")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(line for line in lines if line)}},
    ]
    if findings:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(findings)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": where}]})
    return {"text": f"{head}: {where}", "blocks": blocks}


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 120:
        return f"{minutes // 60} h"
    if minutes >= 1:
        return f"{minutes} min"
    return f"{int(seconds)} s"

"""What the page shows of an approval, worked out without I/O or a clock of its own: the time
left, the findings grouped by file, the tally of severities. The templates only lay it out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.approvals import ApprovalState

SEVERITIES = ("critical", "high", "medium", "low", "info")
STATES = tuple(state.value for state in ApprovalState)
NO_FILE = "(not tied to a file)"


@dataclass(frozen=True)
class FileFindings:
    path: str
    findings: list[Any]  # each with reviewer, rule, severity, path, line, message


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A timezone-aware datetime from what the core gave (a datetime or ISO 8601 text)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_left(deadline: datetime | str | None, now: datetime) -> str:
    """`2 h 5 min left`, `under a minute left`, `deadline passed`, rounded down."""
    moment = as_datetime(deadline)
    if moment is None:
        return "no deadline"
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return "deadline passed"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h left"
    if hours:
        return f"{hours} h {minutes} min left"
    if minutes:
        return f"{minutes} min left"
    return "under a minute left"


def is_urgent(deadline: datetime | str | None, now: datetime, *, within_seconds: float = 3600) -> bool:
    moment = as_datetime(deadline)
    return moment is not None and (moment - now).total_seconds() <= within_seconds


def severity_of(finding: Any) -> str:
    return str(getattr(finding.severity, "value", finding.severity)).lower()


def by_file(findings: list[Any]) -> list[FileFindings]:
    """Findings grouped by path (files in name order, findings tied to no file last), each file's
    by line, worst first on the same line."""
    groups: dict[str, list[Any]] = {}
    for finding in findings:
        groups.setdefault(finding.path or NO_FILE, []).append(finding)

    def order(finding: Any) -> tuple[int, int]:
        severity = severity_of(finding)
        return (finding.line or 0, SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES))

    paths = sorted(groups, key=lambda path: (path == NO_FILE, path))
    return [FileFindings(path, sorted(groups[path], key=order)) for path in paths]


def tally(findings: list[Any]) -> str:
    """`1 critical, 2 high` (worst first), or `no findings`."""
    counts = Counter(severity_of(finding) for finding in findings)
    named = [f"{counts[s]} {s}" for s in SEVERITIES if counts[s]]
    named += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in SEVERITIES]
    return ", ".join(named) or "no findings"


def when(value: datetime | str | None) -> str:
    """A moment as people read it, in UTC: `2026-11-27 14:05 UTC`."""
    moment = as_datetime(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def iso(value: datetime | str | None) -> str:
    moment = as_datetime(value)
    return moment.isoformat() if moment else ""


def plain(value: Any) -> str:
    """An enum's value, or the thing itself, as text."""
    return str(getattr(value, "value", value))

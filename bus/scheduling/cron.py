"""Schedule expressions as the NATS server reads them, checked and stepped through here.

Pure: no I/O, no clock. The server fires the schedules; this module only checks a declaration
before it reaches the server (a typo fails at import, not at the first publish) and answers
"when does it fire next?" for `mesh schedule list`.

- cron: 6 fields, seconds first (`0 0 9 * * *` is 09:00:00 daily), each `*`, `?`, a number, a
  range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`; months and weekdays may be names (`jan`,
  `mon`); 0 is Sunday. When both day fields are restricted a day matching either fires (as in
  `crontab(5)`). `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly` stand for their cron forms.
- intervals: `1s`, `90s`, `6h`, `1h30m` (whole seconds, at least one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREDEFINED = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_MONTHS = {
    m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, lowest, highest, names)
_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_DURATION = re.compile(r"(\d+)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_HORIZON_DAYS = 5 * 366  # a cron that matches no day within five years never fires (`0 0 0 30 2 *`)


class ScheduleSyntaxError(ValueError):
    """A schedule the server would refuse; the message says which part and what is allowed."""


@dataclass(frozen=True)
class Cron:
    """A parsed 6-field cron expression."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`

    @classmethod
    def parse(cls, text: str) -> Cron:
        expression = PREDEFINED.get(text.strip().lower(), text.strip())
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleSyntaxError(
                f"cron {text!r} has {len(fields)} field(s); NATS takes 6, seconds first "
                "(`0 0 9 * * *` is 09:00:00 every day), or one of " + ", ".join(PREDEFINED)
            )
        values = [_field(raw, *spec, whole=text) for raw, spec in zip(fields, _FIELDS, strict=True)]
        return cls(text, *values, any_day=fields[3] in ("*", "?"), any_weekday=fields[5] in ("*", "?"))

    def _day_matches(self, moment: datetime) -> bool:
        in_month = moment.day in self.days
        in_week = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, moment: datetime, tz: ZoneInfo | None = None) -> datetime | None:
        """The first firing strictly after `moment` (aware), in UTC; None if none within five years.

        Local times a daylight-saving change skips never fire; a repeated hour fires once."""
        zone = tz or ZoneInfo("UTC")
        start = moment.astimezone(zone).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        t, horizon = start, start + timedelta(days=_HORIZON_DAYS)
        while t < horizon:
            if t.month not in self.months:
                t = (t.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                aware = t.replace(tzinfo=zone)
                exists = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == t
                if exists and aware.astimezone(UTC) > moment:
                    return aware.astimezone(UTC)
                t += timedelta(seconds=1)
        return None


def _field(raw: str, name: str, low: int, high: int, names: dict[str, int], *, whole: str) -> frozenset[int]:
    found: set[int] = set()
    for part in raw.lower().split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body in ("*", "?"):
                first, last = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                first, last = _number(a, names), _number(b, names)
            else:
                first = _number(body, names)
                last = high if step_text else first
        except ValueError:
            raise ScheduleSyntaxError(f"cron {whole!r}: {name} field {raw!r} is not a number, range or list") from None
        if step < 1 or not (low <= first <= last <= high):
            raise ScheduleSyntaxError(f"cron {whole!r}: {name} field {raw!r} is outside {low}-{high}")
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _number(text: str, names: dict[str, int]) -> int:
    return names[text] if text in names else int(text)


def parse_every(value: str | timedelta) -> timedelta:
    """`6h`, `90s`, `1h30m` or a timedelta: a whole number of seconds, at least one."""
    if isinstance(value, timedelta):
        delta = value
    else:
        text = value.strip().lower()
        if not text or _DURATION.sub("", text):
            raise ScheduleSyntaxError(f"interval {value!r} is not like `1s`, `90s`, `15m`, `6h` or `1h30m`")
        delta = timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))
    if delta < timedelta(seconds=1) or delta.microseconds:
        raise ScheduleSyntaxError(f"interval {value!r} must be a whole number of seconds, at least 1 s")
    return delta


def every_text(delta: timedelta) -> str:
    """`1h30m`, `6h`, `45s`: the interval as the server's `@every` reads it."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone `name` (None for none), or a clear error."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleSyntaxError(
            f"time zone {name!r} is not an IANA zone name such as `Europe/Berlin` or `UTC`"
        ) from None


def next_every(anchor: datetime, every: timedelta, now: datetime) -> datetime:
    """The first `anchor + k * every` after `now` (an estimate of an interval schedule's next firing)."""
    if anchor > now:
        return anchor
    steps = int((now - anchor) / every) + 1
    return anchor + steps * every

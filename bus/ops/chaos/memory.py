"""What a chaos run's services held in memory before and after it (`mesh chaos --rss`), read
from /proc."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Memory:
    before: int = 0
    after: int = 0
    peak: int = 0


def _status(pid: int | None, field_name: str) -> int:
    """A `VmRSS`/`VmHWM` figure of a live process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, TypeError):
        pass
    return 0


def rss(pid: int | None) -> int:
    return _status(pid, "VmRSS")


def peak_rss(pid: int | None) -> int:
    return _status(pid, "VmHWM")

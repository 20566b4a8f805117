"""What a process costs: CPU seconds and resident memory, read from /proc (Linux).

CPU is user + system time of the process itself; peak RSS is the kernel's high-water mark
(`VmHWM`) over the process's whole life.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces: skip past it
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def memory(pid: int) -> dict[str, int]:
    """`rss` and `peak_rss` of the process in bytes (0 when it is gone)."""
    found = {"rss": 0, "peak_rss": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    found["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    found["peak_rss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


@dataclass
class ProcessUsage:
    """What one process used during a measurement."""

    label: str  # "security#2": the second replica of security
    pid: int
    cpu_seconds: float
    peak_rss_bytes: int


class Meter:
    """CPU used by a set of processes between `start()` and `stop()`, and their peak RSS."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = dict(processes)  # label -> pid
        self._cpu_at_start: dict[str, float] = {}

    def start(self) -> Meter:
        self._cpu_at_start = {label: cpu_seconds(pid) for label, pid in self.processes.items()}
        return self

    def stop(self) -> list[ProcessUsage]:
        return [
            ProcessUsage(
                label,
                pid,
                round(cpu_seconds(pid) - self._cpu_at_start.get(label, 0.0), 3),
                memory(pid)["peak_rss"],
            )
            for label, pid in self.processes.items()
        ]

#!/usr/bin/env python3
"""The image's HEALTHCHECK: `mesh-healthcheck [PATH]` GETs PATH (`/healthz` by default) from the
service running in this container and exits 0 on a 200, 1 otherwise.

The port is MESH_HTTP_PORT when it names one. Replicas that share the host's network serve on a
free port each (MESH_HTTP_PORT=0); then it is the port a process of this container listens on,
read from /proc. Standard library only: it runs every few seconds and must start fast.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def socket_inodes() -> set[str]:
    """The sockets this container's processes hold (its own pid namespace: only its processes)."""
    inodes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # gone, or not ours to read
            continue
    return inodes


def listening_ports() -> list[int]:
    ours = socket_inodes()
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)  # the header
                for row in rows:
                    fields = row.split()
                    if fields[3] == "0A" and fields[9] in ours:  # 0A: LISTEN
                        ports.append(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    port = int(os.environ.get("MESH_HTTP_PORT") or 0)
    ports = [port] if port else listening_ports()
    host = os.environ.get("MESH_HTTP_HOST", "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    where = f"[{host}]" if ":" in host else host
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://{where}:{port}{path}", timeout=3) as answer:
                if answer.status == 200:
                    return 0
        except OSError as exc:  # refused, timed out, or an HTTP error status
            print(f"{path} on port {port}: {exc}", file=sys.stderr)
    if not ports:
        print("no listening port yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

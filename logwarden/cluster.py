"""Running one flow as several local processes (``run -p N``), as Bytewax clusters do.

Each process is this same command with ``LOGWARDEN_PROCESS_ID`` and ``LOGWARDEN_ADDRESSES`` set;
Bytewax spreads input partitions and keyed state over every worker of every process. Across
hosts, start one process per host with those two settings instead (see docs/streaming-and-recovery.md).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from types import FrameType

import orjson


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In each child: if this launcher dies (even by SIGKILL), the child gets SIGKILL too, so no
    orphaned half of a cluster keeps running (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_local_cluster(argv: list[str], processes: int) -> int:
    """Start ``processes`` copies of ``logwarden ARGV``, wait for all; the first failure's exit code."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(processes)]
    children = []
    for i in range(processes):
        env = {**os.environ, "LOGWARDEN_PROCESS_ID": str(i), "LOGWARDEN_ADDRESSES": orjson.dumps(addresses).decode()}
        children.append(subprocess.Popen([sys.executable, "-m", "logwarden", *argv], env=env,
                                         preexec_fn=_die_with_parent))

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return next((c for c in codes if c != 0), 0)

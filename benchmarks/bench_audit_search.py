"""``logwarden audit search`` on a big trail: a one-hour, one-entity question, with the segments
its seals rule out skipped, beside the full scan that reads every segment.

    python benchmarks/bench_audit_search.py [--records 1000000] [--days 30] [--repeat 5]

The trail: ``--records`` event records over ``--days`` (200 users, 4 sources), written with the
real ``AuditTrail`` (HMAC chain, segments of the default 50,000 records, no encryption) into a
temporary directory. The question: one user's records of one hour in the middle. Reported: the
median time of ``search`` (which also verifies the segments its hits come from), the segments
read and skipped, and the full scan's time; the two must return the same records.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-audit-search-key-0123456789"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from logwarden.audit.search import Query, search
    from logwarden.audit.trail import AuditTrail

    start = datetime(2026, 3, 1, tzinfo=UTC)
    step = timedelta(days=args.days) / args.records
    users = [f"user{i:03d}" for i in range(200)]
    sources = ["/var/log/payments/api.jsonl", "/var/log/web/access.log", "/var/log/auth.log", "/var/log/k8s/audit.log"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trail = AuditTrail(root, "events", KEY, fsync="never")
        t = time.perf_counter()
        batch = []
        for i in range(args.records):
            at = (start + step * i).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            batch.append(("event", at, {"user.name": users[(i * 7) % 200], "source.ip": f"10.0.{i % 50}.{i % 200}",
                                        "log.file.path": sources[i % 4], "event.action": "read",
                                        "event.outcome": "success", "resource": f"billing/{i % 1000}"}))
            if len(batch) == 5000:
                trail.append(batch)
                batch = []
        trail.append(batch)
        trail.seal()
        written = time.perf_counter() - t
        middle = start + timedelta(days=args.days / 2)
        query = Query(start=middle, end=middle + timedelta(hours=1), entity="user042", classes=("events",))
        fast_times, full_times = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fast = search(root, query, KEY)
            fast_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        full = search(root, query, KEY, skip=False)
        full_times.append(time.perf_counter() - t)
        assert [h.to_dict() for h in fast.hits] == [h.to_dict() for h in full.hits], "not what a full scan returns"
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"trail: {args.records:,} event records over {args.days} days, {fast.read + fast.skipped} segments "
              f"(written in {written:.1f} s)")
        print(f"question: one user, one hour: {len(fast.hits)} record(s), all verified: "
              f"{all(h.verified for h in fast.hits)}")
        print(f"search: {statistics.median(fast_times):.3f} s (median of {args.repeat}), {fast.read} segment(s) read, "
              f"{fast.skipped} skipped by their seals")
        print(f"full scan: {full_times[0]:.2f} s, {full.read} segments read; the same records")


if __name__ == "__main__":
    main()

"""Incident updates per second against the real Redis: batches of alerts, as the flow's
incident sink applies them (one WATCH/MULTI transaction per batch).

    python benchmarks/bench_incidents.py [--alerts 50000] [--batch 1000] [--fingerprints 2000]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis

from logwarden.alerts import Alert
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentStore


def alerts(n: int, fingerprints: int, seed: int = 1) -> list[Alert]:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    out, revisions = [], {}
    for k in range(n):
        f = rng.randrange(fingerprints)
        rev = revisions[f] = revisions.get(f, -1) + 1
        ts = t0 + timedelta(seconds=k)
        out.append(Alert(f"alert-{f}", "ssh-bruteforce", "high", f"10.0.{f // 256}.{f % 256}", ts, ts, rev + 1,
                         "bench", [f"ev{k}"], ["nist-800-53:AC-7"], rev, "bench"))
    return out


def run(store: IncidentStore, items: list[Alert], batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(items), batch):
        store.apply(items[i : i + batch])
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--fingerprints", type=int, default=2000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    items = alerts(args.alerts, args.fingerprints)
    print(f"{args.alerts:,} alerts over {args.fingerprints:,} fingerprints, batches of {args.batch}")
    print(f"in memory                 {run(IncidentStore(MemoryBackend()), items, args.batch):>10,.0f} alerts/s")
    prefix = f"lwbench:{uuid.uuid4().hex[:8]}:"
    try:
        rate = run(IncidentStore(RedisBackend.from_url(args.redis, prefix)), items, args.batch)
        print(f"Redis (WATCH/MULTI)       {rate:>10,.0f} alerts/s")
    finally:
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()

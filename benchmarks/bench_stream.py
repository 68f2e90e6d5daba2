"""End to end from a Redis stream: throughput against workers / processes, and alert latency.

throughput: mixed access logs (web, API JSON, sshd) with tens of thousands of principals are put
    into three Redis streams first; then ``logwarden run`` reads them to their end through the
    standard, the default rule pack and the anomaly model, with incidents in Redis. Timed per
    configuration (1 worker, 2 workers, 2 processes); a run on an empty stream gives the start-up
    cost, which is subtracted.

memory: the resident memory of a following flow holding the live state (rule windows, feature
    windows) of many principals, beside an idle one: the sizing guide's memory per principal.

latency: ``logwarden run --follow`` reads one stream that a feeder fills at a steady rate (default
    10k events/s, now-stamped API events). Every half second the feeder completes an SSH brute
    force (the 10th failed login of a fresh address) and notes when that entry entered the stream;
    the time until its incident exists in Redis is the alert latency (p50, p99).

    python benchmarks/bench_stream.py throughput [--events 200000]
    python benchmarks/bench_stream.py memory [--events 150000] [--principals 30000]
    python benchmarks/bench_stream.py latency [--rate 10000] [--seconds 30] [--lateness L] [-p 1] [--recovery]

Needs a Redis server (LOGWARDEN_BENCH_REDIS, default redis://127.0.0.1:6379/0); uses and then deletes
keys under lwbench:.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rules import generate

ROOT = Path(__file__).resolve().parents[1]
REDIS = os.environ.get("LOGWARDEN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def _run(args: list[str], prefix: str, extra_env: dict[str, str] | None = None) -> float:
    env = {**os.environ, "LOGWARDEN_REDIS_URL": REDIS, "LOGWARDEN_REDIS_PREFIX": prefix,
           "LOGWARDEN_SYSLOG_YEAR": "2026", **(extra_env or {})}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "logwarden", "run", *args], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def _cleanup(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}*"))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])


def throughput(events: int, principals: int) -> None:
    client = redis.Redis.from_url(REDIS)
    prefix = f"lwbench:{uuid.uuid4().hex[:8]}:"
    work = Path(tempfile.mkdtemp(prefix="lw-bench-stream-"))
    try:
        for path, fmt in generate(work, events, principals):
            stream = f"{prefix}in:{Path(path).stem}"
            lines = Path(path).read_text().splitlines()
            for i in range(0, len(lines), 5000):
                pipe = client.pipeline(transaction=False)
                for line in lines[i:i + 5000]:
                    pipe.xadd(stream, {"line": line, "source": path, "format": fmt})
                pipe.execute()
        total = sum(client.xlen(s) for s in client.scan_iter(f"{prefix}in:*"))
        start = _run(["-i", f"{REDIS}?stream={prefix}empty"], prefix + "e:")
        print(f"{total:,} events in 3 streams, {principals:,} principals; default rules + model, incidents in Redis")
        print(f"start-up and shut-down of a run (empty stream): {start:.1f} s, subtracted below")
        for label, flags in (("1 worker", ["-w", "1"]), ("2 workers (1 process)", ["-w", "2"]),
                             ("2 processes x 1 worker", ["-p", "2"])):
            _cleanup(client, prefix + "run:")
            took = _run(["-i", f"{REDIS}?stream={prefix}in:*", *flags], prefix + "run:")
            print(f"{label:<26} {total / max(took - start, 1e-9):>10,.0f} events/s  ({took:.1f} s in all)")
    finally:
        _cleanup(client, prefix)


def latency(rate: int, seconds: int, lateness: str | None, processes: int, recovery: bool) -> None:
    """With every setting at its default (the allowed lateness too) unless given."""
    client = redis.Redis.from_url(REDIS)
    prefix = f"lwbench:{uuid.uuid4().hex[:8]}:"
    stream = f"{prefix}live"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")},
           "LOGWARDEN_REDIS_URL": REDIS, "LOGWARDEN_REDIS_PREFIX": prefix,
           **({"LOGWARDEN_ALLOWED_LATENESS": lateness} if lateness is not None else {}),
           # each attack is its own address: without a budget, each is an incident of its own to time
           "LOGWARDEN_RULE_BUDGET": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "-i", f"{REDIS}?stream={stream}", "--follow",
                             "-p", str(processes), *(["--recovery-dir", tempfile.mkdtemp(prefix="lw-bench-rec-")]
                                                     if recovery else [])],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    fp = f"{prefix}fp:"
    from logwarden.incidents.model import group_key

    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:  # when each attack's incident exists in Redis
        while not stop.is_set() or len(seen) < len(sent):
            pending = [ip for ip in list(sent) if ip not in seen]
            if pending:
                found = client.mget([fp + group_key("entity", "ssh-bruteforce", ip) for ip in pending])
                now = time.perf_counter()
                for ip, got in zip(pending, found, strict=True):
                    if got is not None:
                        seen[ip] = now
            if stop.is_set() and time.perf_counter() > stop_at + 30:
                return
            time.sleep(0.002)

    time.sleep(4)  # let the flow start
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    per_slice = max(rate // 100, 1)  # a pipeline every 10 ms
    t0 = time.perf_counter()
    k = attacks = 0
    while time.perf_counter() - t0 < seconds:
        now = datetime.now(UTC)
        pipe = client.pipeline(transaction=False)
        for _ in range(per_slice):
            k += 1
            pipe.xadd(stream, {"line": orjson.dumps({"@timestamp": now.isoformat(), "user": f"user{k % 20000}",
                                                     "src_ip": f"10.{k % 200}.{k // 200 % 250}.{k % 250}",
                                                     "action": "read", "outcome": "success",
                                                     "path": f"/api/v1/items/{k % 500}", "bytes": 100}).decode(),
                               "source": "api.jsonl", "format": "json"})
        tick = int((time.perf_counter() - t0) / 0.5)
        completing = None
        if tick > attacks:  # an attack every half second: 9 failures now, the 10th completes it
            attacks = tick
            ip = f"203.0.{attacks // 250}.{attacks % 250}"
            stamp = now.strftime("%b %d %H:%M:%S")
            for n in range(10):
                line = f"{stamp} bastion sshd[{n}]: Failed password for alice from {ip} port 22 ssh2"
                if n == 9:
                    completing = (ip, line)
                else:
                    pipe.xadd(stream, {"line": line, "source": "auth.log", "format": "syslog"})
        pipe.execute()
        if completing is not None:
            client.xadd(stream, {"line": completing[1], "source": "auth.log", "format": "syslog"})
            sent[completing[0]] = time.perf_counter()
        spare = t0 + (k / rate) - time.perf_counter()
        if spare > 0:
            time.sleep(spare)
    fed = time.perf_counter() - t0
    stop_at = time.perf_counter()
    stop.set()
    watcher.join()
    proc.terminate()
    proc.wait(timeout=30)
    lag = sorted(seen[ip] - sent[ip] for ip in seen)
    try:
        print(f"{k:,} events in {fed:.1f} s ({k / fed:,.0f}/s) + {len(sent)} attacks; "
              f"allowed lateness {lateness or 'default (5m)'}; "
              f"{processes} process(es); recovery {'on (snapshots every 10 s)' if recovery else 'off'}")
        if lag:
            p99 = lag[min(len(lag) - 1, int(len(lag) * 0.99))]
            p90 = lag[int(len(lag) * 0.9)]
            print(f"alert latency: p50 {statistics.median(lag) * 1000:,.0f} ms, p90 {p90 * 1000:,.0f} ms, "
                  f"p99 {p99 * 1000:,.0f} ms, "
                  f"max {lag[-1] * 1000:,.0f} ms; {len(lag)}/{len(sent)} incidents within 30 s of the end")
        else:
            print(f"no incident within 30 s of the end (0/{len(sent)})")
    finally:
        _cleanup(client, prefix)


def memory(events: int, principals: int) -> None:
    """Resident memory of a following flow once it holds the live state of many principals."""
    import socket
    import urllib.request

    from logwarden.metrics import parse_exposition

    client = redis.Redis.from_url(REDIS)
    prefix = f"lwbench:{uuid.uuid4().hex[:8]}:"
    work = Path(tempfile.mkdtemp(prefix="lw-bench-mem-"))

    def rss_after(stream: str, total: int) -> float:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "LOGWARDEN_REDIS_URL": REDIS, "LOGWARDEN_REDIS_PREFIX": prefix,
               "LOGWARDEN_SYSLOG_YEAR": "2026", "LOGWARDEN_METRICS_PORT": str(port)}
        proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "-i", f"{REDIS}?stream={stream}",
                                 "--follow"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                time.sleep(1)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                        values = parse_exposition(resp.read().decode())
                except OSError:
                    continue
                read = sum(v for k, v in values.items() if k.startswith("logwarden_lines{"))
                if read >= total:
                    break
            time.sleep(2)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS"))) * 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    try:
        files = generate(work, events, principals)
        columns = [Path(path).read_text().splitlines() for path, _ in files]
        stream = f"{prefix}mem"
        pipe = client.pipeline(transaction=False)
        for row in zip(*columns, strict=False):  # the three sources share timestamps: interleave them
            for (path, fmt), line in zip(files, row, strict=True):
                pipe.xadd(stream, {"line": line, "source": path, "format": fmt})
            if len(pipe) >= 6000:
                pipe.execute()
        pipe.execute()
        total = client.xlen(stream)
        client.xadd(f"{prefix}idle", {"line": columns[1][0], "source": files[1][0], "format": files[1][1]})
        idle = rss_after(f"{prefix}idle", 1)
        busy = rss_after(stream, total)
        print(f"{total:,} events over 33 min of event time, {principals:,} principals (users and addresses), "
              f"default rules + model, following")
        print(f"resident memory: {idle / 1e6:,.0f} MB idle, {busy / 1e6:,.0f} MB holding their live state: "
              f"{(busy - idle) / principals / 1e3:,.1f} kB per active principal")
    finally:
        _cleanup(client, prefix)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--events", type=int, default=200_000)
    t.add_argument("--principals", type=int, default=30_000)
    lat = sub.add_parser("latency")
    lat.add_argument("--rate", type=int, default=10_000)
    lat.add_argument("--seconds", type=int, default=30)
    lat.add_argument("--lateness", default=None, help="LOGWARDEN_ALLOWED_LATENESS (default: its default, 5m)")
    lat.add_argument("-p", "--processes", type=int, default=1)
    lat.add_argument("--recovery", action="store_true", help="run with --recovery-dir (snapshots on)")
    mem = sub.add_parser("memory")
    mem.add_argument("--events", type=int, default=150_000)
    mem.add_argument("--principals", type=int, default=30_000)
    args = ap.parse_args()
    if args.what == "throughput":
        throughput(args.events, args.principals)
    elif args.what == "memory":
        memory(args.events, args.principals)
    else:
        latency(args.rate, args.seconds, args.lateness, args.processes, args.recovery)


if __name__ == "__main__":
    main()

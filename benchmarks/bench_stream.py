"""End to end from Redis streams (and tailed files): throughput against workers / processes, and
alert latency.

throughput: mixed access logs (web, API JSON, sshd) with tens of thousands of principals are put
    into three Redis streams first; then ``logwarden run`` reads them to their end through the
    standard, the default rule pack and the anomaly model, with incidents in Redis. Timed per
    configuration (1 worker, 2 workers, 2 processes); a run on an empty stream gives the start-up
    cost, which is subtracted.

memory: the resident memory of a following flow holding the live state (rule windows, feature
    windows) of many principals, beside an idle one: the sizing guide's memory per principal.

latency: ``logwarden run --follow`` with default settings reads one stream (or, ``--via file``,
    three tailed files: API JSON, sshd, web access) that a feeder fills at a steady rate (default
    10k events/s, now-stamped API events). Every two seconds the feeder completes one attack of a
    fresh address, in turn a threshold (the 10th failed SSH login), a match (an SQL injection the
    web server answered) and a sequence (5 failures, then a success), and notes when its
    completing line entered the input; it reports, per detector kind, the time from there to the
    alert line (``--alerts``), to the incident in Redis and to the Slack message (a local server
    speaking Slack's Web API), as p50/p90/p99/max.

    python benchmarks/bench_stream.py throughput [--events 200000]
    python benchmarks/bench_stream.py memory [--events 150000] [--principals 30000]
    python benchmarks/bench_stream.py latency [--rate 10000] [--seconds 30] [--via stream|file] [--lateness L]
        [-p 1] [--recovery]

Needs a Redis server (LOGWARDEN_BENCH_REDIS, default redis://127.0.0.1:6379/0); uses and then deletes
keys under lwbench:.
"""

from __future__ import annotations

import argparse
import os
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


KINDS = ("threshold", "match", "sequence")  # the attack of each tick, in turn
ATTACK_EVERY = 2.0  # seconds


def _attack(kind: str, n: int, now: datetime) -> tuple[str, list[tuple[str, str, str]], str]:
    """A fresh address's attack of one detector kind: (address, lines before, the completing line),
    lines as (line, source, format); the entity the alert names is the address."""
    ip = f"203.0.{n // 250 % 250}.{n % 250}"
    stamp = now.strftime("%b %d %H:%M:%S")
    if kind == "threshold":  # ssh-bruteforce: the 10th failed login within 5 minutes
        lines = [f"{stamp} bastion sshd[{n}]: Failed password for alice from {ip} port 22 ssh2" for _ in range(10)]
        return ip, [(x, "auth.log", "syslog") for x in lines[:-1]], lines[-1]
    if kind == "sequence":  # ssh-bruteforce-then-success: 5 failures, then the login succeeds
        fails = [(f"{stamp} bastion sshd[{n}]: Failed password for alice from {ip} port 22 ssh2", "auth.log",
                  "syslog") for _ in range(5)]
        return ip, fails, f"{stamp} bastion sshd[{n}]: Accepted password for alice from {ip} port 22 ssh2"
    clf = now.strftime("%d/%b/%Y:%H:%M:%S +0000")  # match: sqli-or-traversal, one request the server answered
    return ip, [], (f'{ip} - - [{clf}] "GET /items?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1" '
                    '200 512 "-" "python-requests/2.31"')


class _SlackServer:
    """A local server speaking Slack's Web API: notes when each message naming an address came."""

    def __init__(self) -> None:
        import http.server

        self.bodies: list[tuple[float, bytes]] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.endswith(("chat.postMessage", "chat.update")):
                    bodies.append((time.perf_counter(), body))
                answer = orjson.dumps({"ok": True, "channel": "C0BENCH", "ts": f"{time.time():.6f}"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"


class _StreamFeed:
    """Lines into one Redis stream (each entry names its source and format)."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        self.pipe = client.pipeline(transaction=False)

    def inputs(self) -> list[str]:
        return ["-i", f"{REDIS}?stream={self.stream}"]

    def put(self, line: str, source: str, fmt: str) -> None:
        self.pipe.xadd(self.stream, {"line": line, "source": source, "format": fmt})

    def flush(self) -> None:
        self.pipe.execute()


class _FileFeed:
    """Lines appended to three tailed files (one per source), flushed at each ``flush``."""

    FIRST = {"api.jsonl": '{"@timestamp": "%s", "user": "ops", "action": "read", "outcome": "success"}',
             "auth.log": "%s bastion sshd[1]: Accepted publickey for ops from 10.0.0.8 port 22 ssh2",
             "access.log": '10.0.0.9 - - [%s] "GET / HTTP/1.1" 200 12 "-" "curl/8.5"'}

    def __init__(self, work: Path) -> None:
        now = datetime.now(UTC)
        stamps = {"api.jsonl": now.isoformat(), "auth.log": now.strftime("%b %d %H:%M:%S"),
                  "access.log": now.strftime("%d/%b/%Y:%H:%M:%S +0000")}
        self.files = {}
        for name, first in self.FIRST.items():  # a first line each, for format detection
            path = work / name
            path.write_text(first % stamps[name] + "\n")
            self.files[name] = path.open("a")

    def inputs(self) -> list[str]:
        return [arg for f in self.files.values() for arg in ("-i", f.name)]

    def put(self, line: str, source: str, fmt: str) -> None:
        self.files[source].write(line + "\n")

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()


def latency(rate: int, seconds: int, lateness: str | None, processes: int, recovery: bool, via: str) -> None:
    """With every setting at its default (the allowed lateness too) unless given."""
    client = redis.Redis.from_url(REDIS)
    prefix = f"lwbench:{uuid.uuid4().hex[:8]}:"
    slack = _SlackServer()
    work = Path(tempfile.mkdtemp(prefix="lw-bench-lat-"))
    alerts_file = work / "alerts.jsonl"
    feed = _FileFeed(work) if via == "file" else _StreamFeed(client, f"{prefix}live")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")},
           "LOGWARDEN_REDIS_URL": REDIS, "LOGWARDEN_REDIS_PREFIX": prefix,
           **({"LOGWARDEN_ALLOWED_LATENESS": lateness} if lateness is not None else {}),
           # each attack is its own address: without a budget, each is an incident of its own to time
           "LOGWARDEN_RULE_BUDGET": "none", "LOGWARDEN_SYSLOG_YEAR": str(datetime.now(UTC).year),
           "LOGWARDEN_SLACK_TOKEN": "xoxb-bench", "LOGWARDEN_SLACK_CHANNEL": "#security",
           "LOGWARDEN_SLACK_API_URL": slack.url}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", *feed.inputs(), "--follow",
                             "--alerts", str(alerts_file), "-p", str(processes),
                             *(["--recovery-dir", tempfile.mkdtemp(prefix="lw-bench-rec-")] if recovery else [])],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    fp = f"{prefix}fp:"
    from logwarden.incidents.model import group_key

    rule_of = {"threshold": "ssh-bruteforce", "match": "sqli-or-traversal", "sequence": "ssh-bruteforce-then-success"}
    sent: dict[str, tuple[str, float]] = {}  # address -> (kind, when its completing line entered the input)
    stages: dict[str, dict[str, float]] = {"alert line": {}, "incident in Redis": {}, "Slack post": {}}
    stop = threading.Event()

    def watch() -> None:  # when each attack's alert line, incident and Slack message exist
        read = 0
        while not stop.is_set() or time.perf_counter() < stop_at + 30:
            now = time.perf_counter()
            if alerts_file.exists():
                with alerts_file.open("rb") as f:
                    f.seek(read)
                    chunk = f.read()
                cut = chunk.rfind(b"\n") + 1
                read += cut
                for line in chunk[:cut].splitlines():
                    alert = orjson.loads(line)
                    ip = alert.get("entity")
                    if ip in sent and alert.get("rule_id") == rule_of[sent[ip][0]]:
                        stages["alert line"].setdefault(ip, now)
            pending = [ip for ip in list(sent) if ip not in stages["incident in Redis"]]
            if pending:
                found = client.mget([fp + group_key("entity", rule_of[sent[ip][0]], ip) for ip in pending])
                for ip, got in zip(pending, found, strict=True):
                    if got is not None:
                        stages["incident in Redis"][ip] = now
            posted = stages["Slack post"]
            while slack.bodies:
                at, body = slack.bodies.pop(0)
                for ip in sent:
                    if ip not in posted and ip.encode() in body:
                        posted[ip] = at
            if stop.is_set() and len(stages["Slack post"]) >= len(sent) and len(stages["alert line"]) >= len(sent):
                return
            time.sleep(0.002)

    time.sleep(4)  # let the flow start
    watcher = threading.Thread(target=watch, daemon=True)
    stop_at = float("inf")
    watcher.start()
    per_slice = max(rate // 100, 1)  # a pipeline every 10 ms
    t0 = time.perf_counter()
    k = attacks = 0
    while time.perf_counter() - t0 < seconds:
        now = datetime.now(UTC)
        for _ in range(per_slice):
            k += 1
            feed.put(orjson.dumps({"@timestamp": now.isoformat(), "user": f"user{k % 20000}",
                                   "src_ip": f"10.{k % 200}.{k // 200 % 250}.{k % 250}", "action": "read",
                                   "outcome": "success", "path": f"/api/v1/items/{k % 500}", "bytes": 100}).decode(),
                     "api.jsonl", "json")
        tick = int((time.perf_counter() - t0) / ATTACK_EVERY)
        completing = None
        if tick > attacks:  # Slack takes about a message a second per channel: attacks come slower
            attacks = tick
            kind = KINDS[attacks % len(KINDS)]
            ip, before, last = _attack(kind, attacks, now)
            for line, source, fmt in before:
                feed.put(line, source, fmt)
            completing = (ip, kind, last, "access.log" if kind == "match" else "auth.log",
                          "combined" if kind == "match" else "syslog")
        feed.flush()
        if completing is not None:
            ip, kind, line, source, fmt = completing
            feed.put(line, source, fmt)
            feed.flush()
            sent[ip] = (kind, time.perf_counter())
        spare = t0 + (k / rate) - time.perf_counter()
        if spare > 0:
            time.sleep(spare)
    fed = time.perf_counter() - t0
    stop_at = time.perf_counter()
    stop.set()
    watcher.join()
    proc.terminate()
    proc.wait(timeout=30)
    slack.server.shutdown()
    try:
        into = "3 tailed files" if via == "file" else "a Redis stream"
        print(f"{k:,} events in {fed:.1f} s ({k / fed:,.0f}/s) into {into} + {len(sent)} attacks; "
              f"allowed lateness {lateness or 'per source (defaults)'}; "
              f"{processes} process(es); recovery {'on (snapshots every 10 s)' if recovery else 'off'}; "
              "from the completing line entering the input to:")
        print(f"{'detector':<10} {'stage':<18} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  found")
        for kind in KINDS:
            mine = [ip for ip, (kd, _) in sent.items() if kd == kind]
            for stage, times in stages.items():
                lag = sorted(times[ip] - sent[ip][1] for ip in mine if ip in times)
                if not lag:
                    print(f"{kind:<10} {stage:<18} {'-':>8} {'-':>8} {'-':>8} {'-':>8}  0/{len(mine)}")
                    continue
                pick = [lag[min(len(lag) - 1, int(len(lag) * q))] for q in (0.5, 0.9, 0.99)]
                print(f"{kind:<10} {stage:<18} " + " ".join(f"{v * 1000:>6,.0f}ms" for v in [*pick, lag[-1]])
                      + f"  {len(lag)}/{len(mine)}")
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
    lat.add_argument("--lateness", default=None, help="LOGWARDEN_ALLOWED_LATENESS (default: per source)")
    lat.add_argument("-p", "--processes", type=int, default=1)
    lat.add_argument("--via", choices=["stream", "file"], default="stream",
                     help="the feeder's lines go into one Redis stream, or are appended to three tailed files")
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
        latency(args.rate, args.seconds, args.lateness, args.processes, args.recovery, args.via)


if __name__ == "__main__":
    main()

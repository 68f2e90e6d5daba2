"""kill -9 at random moments while the flow consumes a Redis stream, restart, repeat: every planted
attack ends up with exactly one incident, Slack (the local stand-in) gets exactly one first message
per incident, and the audit trail verifies with no alert recorded twice."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

from logwarden.audit.trail import AuditTrail, Cipher
from logwarden.audit.verify import verify
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentStore
from logwarden.parsers import ParserOptions
from logwarden.simulate import simulate
from logwarden.sources import resolve_inputs
from logwarden.sources.redis_streams import time_ordered
from tests.fakes import TOKEN, FakeSlack, redis_prefix, redis_url, slack  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 25, tzinfo=UTC)
KEY = "recovery-test-chain-key-0123456789"
ENC = "ab" * 32
INCIDENT_ID = re.compile(r"INC-[0-9A-Za-z]+")


def _time_ordered_entries(sim: Path) -> list[dict[str, str]]:
    """Every simulated line as a stream entry, all sources interleaved in event-time order, as a
    log shipper forwarding live sources would put them in one stream."""
    options = ParserOptions()
    inputs = resolve_inputs(sorted(str(p) for p in sim.rglob("*.*") if p.name != "labels.jsonl"), None, options)
    return [{"line": line, "source": path, "format": fmt} for path, fmt, line in time_ordered(inputs, options)]


def _feed(client: redis.Redis, stream: str, entries: list[dict[str, str]], per_second: int,
          done: threading.Event) -> None:
    for i in range(0, len(entries), per_second // 20):
        pipe = client.pipeline(transaction=False)
        for entry in entries[i:i + per_second // 20]:
            pipe.xadd(stream, entry)
        pipe.execute()
        time.sleep(0.05)
    done.set()


def test_sigkill_restarts_lose_nothing_and_double_nothing(redis_url: str, redis_prefix: str,  # noqa: F811
                                                           slack: FakeSlack, tmp_path: Path) -> None:  # noqa: F811
    sim = tmp_path / "sim"
    simulate(sim, days=1, seed=3, end=END)
    labels = [orjson.loads(line) for line in (sim / "labels.jsonl").read_text().splitlines()]
    # Silence is also judged on the wall clock in live runs (its own tests cover that); here every
    # incident must come from the planted events alone.
    local = tmp_path / "local.yaml"
    local.write_text("overrides:\n  - id: log-source-silent\n    enabled: false\n")
    expected = {(rule, lb["entity"]) for lb in labels if lb["type"] == "attack" for rule in lb["rules"]
                if rule != "log-source-silent"}
    api = next(lb["source"] for lb in labels if lb["type"] == "violation" and "secret" in lb)
    expected |= {("standard.secret-in-logs", api), ("standard.compliance-drop", api)}  # the standard's own
    stream = f"{redis_prefix}logs:all"
    audit = tmp_path / "audit"
    env = {**os.environ, "LOGWARDEN_REDIS_URL": redis_url, "LOGWARDEN_REDIS_PREFIX": redis_prefix,
           "LOGWARDEN_SLACK_TOKEN": TOKEN, "LOGWARDEN_SLACK_CHANNEL": "#security",
           "LOGWARDEN_SLACK_API_URL": slack.api_url, "LOGWARDEN_SLACK_MIN_INTERVAL": "0",
           "LOGWARDEN_SLACK_DIGEST_THRESHOLD": "1000", "LOGWARDEN_NOTIFY_LEASE": "2s",
           "LOGWARDEN_AUDIT_DIR": str(audit), "LOGWARDEN_AUDIT_KEY": KEY, "LOGWARDEN_AUDIT_ENCRYPTION_KEY": ENC,
           "LOGWARDEN_AUDIT_FSYNC": "never", "LOGWARDEN_MODEL_ENABLED": "false",
           "LOGWARDEN_ALLOWED_LATENESS": "2s", "LOGWARDEN_SNAPSHOT_INTERVAL": "300ms", "LOGWARDEN_BATCH_SIZE": "50",
           "LOGWARDEN_LOG_FORMAT": "json"}
    alerts, violations = tmp_path / "alerts.jsonl", tmp_path / "violations.jsonl"
    args = [sys.executable, "-m", "logwarden", "run", "-i", f"{redis_url}?stream={stream}", "--follow",
            "--recovery-dir", str(tmp_path / "recovery"), "--alerts", str(alerts), "--violations", str(violations),
            "--rules", str(ROOT / "rules" / "default.yaml"), "--rules", str(local)]

    logs: list[Path] = []

    def start() -> subprocess.Popen[bytes]:
        logs.append(tmp_path / f"run{len(logs) + 1}.log")
        with logs[-1].open("wb") as err:
            return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)

    client = redis.Redis.from_url(redis_url)
    entries = _time_ordered_entries(sim)
    fed = threading.Event()
    feeder = threading.Thread(target=_feed, args=(client, stream, entries, 1000, fed), daemon=True)
    feeder.start()
    rng = random.Random(int(os.environ.get("LOGWARDEN_TEST_SEED", "0")) or None)
    kills = 0
    while kills < 4 or not fed.is_set():
        proc = start()
        time.sleep(rng.uniform(1.5, 4.0))  # a run starts in about 1.5 s: kill it mid-stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    feeder.join()

    store = IncidentStore(RedisBackend.from_url(redis_url, redis_prefix))
    final = start()
    try:
        stable_since, last = time.monotonic(), None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # done: every attack has an incident, all delivered, all quiet
            found = {(r, e) for i in store.list() for r, st in i.rule_stats().items() for e in st["entities"]}
            state = (len(store.list()), len(store.outbox()), alerts.stat().st_size if alerts.exists() else 0,
                     len(slack.calls))
            if state != last:
                stable_since, last = time.monotonic(), state
            if expected <= found and not store.outbox() and time.monotonic() - stable_since > 4:
                break
            time.sleep(0.2)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(timeout=60)

    incidents = store.list()
    # Grouped by entity: every (rule, entity) the simulator planted has an incident, nothing else
    # fired, and each alert is in exactly one incident (a restart doubled none).
    per_attack = {(r, e) for i in incidents for r, st in i.rule_stats().items() for e in st["entities"]}
    assert per_attack == expected, logs[-1].read_text()[-3000:]  # with what the last run logged
    per_alert = Counter(aid for i in incidents for aid in i.alerts)
    assert per_alert and set(per_alert.values()) == {1}
    first_messages = Counter(m for post in slack.posts(thread=False)
                             for m in set(INCIDENT_ID.findall(orjson.dumps(post["body"]).decode())))
    assert first_messages == Counter({i.id: 1 for i in incidents})

    report = verify(audit, KEY.encode())
    assert report.ok, report.lines()
    trail = AuditTrail(audit, "decisions", KEY.encode(), cipher=Cipher(bytes.fromhex(ENC)))
    records = list(trail.records_after(0))
    recorded = Counter((d["alert_id"], d["revision"]) for kind, d in records if kind == "alert")
    twice = {k for k, n in recorded.items() if n > 1}
    # which run (1 = the first started) wrote each copy of a record written twice
    runs = [sum(1 for kind, _ in records[:i + 1] if kind == "run") for i in range(len(records))]
    where = [(d["rule_id"], d["alert_id"], d["revision"], f"run {runs[i]}") for i, (kind, d) in enumerate(records)
             if kind == "alert" and (d["alert_id"], d["revision"]) in twice]
    assert recorded and not twice, where
    written = Counter((d["alert_id"], d["revision"]) for d in map(orjson.loads, alerts.read_bytes().splitlines()))
    assert written == recorded  # the alerts file holds each alert revision once, as the trail does
    assert kills >= 4

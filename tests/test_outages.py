"""#14: Redis outages survived. A redis-server of the test's own is stopped while incident
updates arrive and started again (or never): the updates wait, in order, and are applied when it
answers; the outage and its end are logged once each; what never got applied is written to a file
that ``logwarden incidents apply`` applies later."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from structlog.testing import capture_logs

from logwarden import outage as outage_module
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentPolicy, IncidentStore
from logwarden.incidents.waiting import WaitingUpdates, read_updates
from tests.fakes import TOKEN, Clock, OwnRedis, redis_prefix, redis_url  # noqa: F401  (fixtures)
from tests.test_incidents import alert

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(10)


def _store(backend: Any) -> IncidentStore:
    return IncidentStore(backend, IncidentPolicy(resolve_after=timedelta(hours=1)), Clock())


def _incidents(store: IncidentStore) -> list[tuple[Any, ...]]:
    return sorted((i.id, i.rule_id, i.entity, i.count, i.state, i.version) for i in store.list())


BATCHES = [[alert("a1", 0, 10, entity="203.0.113.5")],
           [alert("a1", 1, 25, entity="203.0.113.5"), alert("b1", 0, 12, entity="198.51.100.7", minute=2)],
           [alert("c1", 0, 40, rule="password-spray", entity="192.0.2.9", minute=3)],
           [alert("b1", 1, 30, entity="198.51.100.7", minute=4)]]


def test_updates_wait_through_an_outage_and_are_applied_in_order_when_redis_returns(
        own_redis: OwnRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage_module, "RETRY_SECONDS", 0.2)
    reference = _store(MemoryBackend("t:"))
    for batch in BATCHES:
        reference.apply(batch)
    store = _store(RedisBackend(redis.Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=1,
                                                     socket_connect_timeout=1), "t:"))
    waiting = WaitingUpdates(store.apply, tmp_path / "spill")
    with capture_logs() as logs:
        assert waiting.apply(BATCHES[0])  # Redis up: applied at once
        own_redis.stop()
        assert waiting.apply(BATCHES[1]) == [] and waiting.apply(BATCHES[2]) == []  # waiting, no error
        assert waiting.waiting == 3
        own_redis.start()
        time.sleep(0.25)
        changed = waiting.apply(BATCHES[3])
    assert {i.entity for i in changed} == {"203.0.113.5", "198.51.100.7", "192.0.2.9"}
    assert waiting.waiting == 0 and waiting.outages == 1
    assert _incidents(store) == _incidents(reference)  # as if Redis had never gone
    events = [entry["event"] for entry in logs]
    assert events.count("redis_outage") == 1 and events.count("redis_back") == 1, events


def test_updates_past_the_bound_go_to_a_file_and_a_run_whose_redis_never_returns_says_where(
        own_redis: OwnRedis, tmp_path: Path) -> None:
    store = _store(RedisBackend(redis.Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=1,
                                                     socket_connect_timeout=1), "t:"))
    waiting = WaitingUpdates(store.apply, tmp_path / "recovery", max_waiting=2)
    own_redis.stop()
    for batch in BATCHES:
        waiting.apply(batch)
    assert waiting.spill is not None and waiting.spill.exists()  # past 2 waiting: to the file
    message = waiting.finish()
    assert message is not None and message.startswith(f"5 incident update(s) wait in {waiting.spill}")
    assert f"logwarden incidents apply {waiting.spill}" in message
    assert [(a.alert_id, a.revision) for a in read_updates(waiting.spill)] == \
        [(a.alert_id, a.revision) for batch in BATCHES for a in batch]
    # Redis back: the command applies them, as a run without the outage would have
    own_redis.start()
    env = os.environ | {"LOGWARDEN_REDIS_URL": own_redis.url, "LOGWARDEN_REDIS_PREFIX": "t:"}
    done = subprocess.run([sys.executable, "-m", "logwarden", "incidents", "apply", str(waiting.spill)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "5 update(s) applied, 3 incident(s) changed" in done.stdout and not waiting.spill.exists()
    reference = _store(MemoryBackend("t:"))
    for batch in BATCHES:
        reference.apply(batch)
    assert [(i[1], i[2], i[3]) for i in _incidents(store)] == [(i[1], i[2], i[3]) for i in _incidents(reference)]


def test_a_run_whose_redis_goes_away_and_never_returns_finishes_its_outputs_and_says_what_waits(
        own_redis: OwnRedis, sim: Path, tmp_path: Path) -> None:
    """Redis stopped just after the flow starts (a replay's alerts come at its end): the run goes
    on, its alerts file is the one a run without Redis writes, the outage is logged once for the
    incidents and once for the new_term terms, and the exit is one line naming what waits."""
    from tests.conftest import sim_inputs

    inputs = [arg for path in sim_inputs(sim) for arg in ("--input", path)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    control = subprocess.run([sys.executable, "-m", "logwarden", "run", *inputs, "--alerts",
                              str(tmp_path / "a0.jsonl")], cwd=ROOT, env=base, capture_output=True, text=True,
                             timeout=300, check=False)
    assert control.returncode == 0, control.stderr
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        run = subprocess.Popen([sys.executable, "-m", "logwarden", "run", *inputs, "--alerts",
                                str(tmp_path / "a1.jsonl")], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr,
                               env=base | {"LOGWARDEN_REDIS_URL": own_redis.url, "PYTHONPATH": str(ROOT)})
        for _ in range(600):
            if "flow_started" in err.read_text():
                break
            time.sleep(0.05)
        own_redis.stop()
        assert run.wait(300) == 2
    text = err.read_text()
    assert "Traceback" not in text
    assert (tmp_path / "a1.jsonl").read_bytes() == (tmp_path / "a0.jsonl").read_bytes()  # complete
    outages = [line for line in text.splitlines() if "redis_outage" in line]
    assert len(outages) == 2 and any("incident updates" in x for x in outages) and any("new_term" in x for x in outages)
    [last] = [line for line in text.splitlines() if line.startswith("logwarden: error: ")]
    alerts = len((tmp_path / "a0.jsonl").read_text().splitlines())
    spill = next(tmp_path.glob("waiting-incident-updates-*.jsonl"))
    assert last.startswith(f"logwarden: error: {alerts} incident update(s) wait in {spill}")
    assert len(read_updates(spill)) == alerts


@pytest.mark.parametrize("max_waiting", [100, 2], ids=["in-memory", "spilled"])
def test_what_waits_is_in_the_recovery_snapshot_and_a_resumed_run_applies_it(
        own_redis: OwnRedis, tmp_path: Path, max_waiting: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed during an outage, the run resumes from its snapshot: the updates that waited then
    (decided before the snapshot, so never emitted again) are applied once Redis is back."""
    import pickle

    from logwarden.sinks import BatchSink

    monkeypatch.setattr(outage_module, "RETRY_SECONDS", 0.0)
    client = redis.Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
    store = _store(RedisBackend(client, "t:"))
    first = WaitingUpdates(store.apply, tmp_path / "recovery", max_waiting=max_waiting, ping=client.ping)
    sink = BatchSink(first.apply, "incidents", state=first.state, restore=first.restore)
    part = sink.build_part("s", "incidents", None)
    own_redis.stop()
    for batch in BATCHES[:3]:
        part.write_batch(batch)
    snapshot = pickle.loads(pickle.dumps(part.snapshot()))  # as Bytewax keeps it; then kill -9
    assert first.waiting == 4 and (first.spill is not None) == (max_waiting == 2)
    own_redis.start()
    resumed = WaitingUpdates(store.apply, tmp_path / "recovery", max_waiting=max_waiting, ping=client.ping)
    part = BatchSink(resumed.apply, "incidents", state=resumed.state,
                     restore=resumed.restore).build_part("s", "incidents", snapshot)
    assert resumed.waiting == 4
    part.write_batch(BATCHES[3])
    assert resumed.waiting == 0 and part.snapshot() == {"waiting": [], "spill": None}
    reference = _store(MemoryBackend("t:"))
    for batch in BATCHES:
        reference.apply(batch)
    assert [(i[1], i[2], i[3]) for i in _incidents(store)] == [(i[1], i[2], i[3]) for i in _incidents(reference)]


def test_metrics_count_outages_and_status_shows_what_waits(tmp_path: Path) -> None:
    from logwarden.metrics import Metrics
    from tests.fakes import _free_port

    metrics, port = Metrics(), _free_port()
    metrics.serve(port)
    url = f"http://127.0.0.1:{port}/metrics"

    def status() -> str:
        done = subprocess.run([sys.executable, "-m", "logwarden", "status", "--url", url], capture_output=True,
                              text=True, cwd=ROOT, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "redis:" not in status()  # never away: nothing to say
    metrics.redis(outages=1, waiting=7)
    assert "redis: NOT ANSWERING: 7 incident update(s) waiting" in status()
    metrics.redis(outages=1, waiting=0)
    metrics.redis(outages=2, waiting=0)
    assert "redis: answering; 2 outage(s) during the run, nothing lost" in status()


def _follow_run(own_redis: OwnRedis, prefix: str, stream_url: str, stream: str, slack: Any,
                entries: list[dict[str, str]], workdir: Path, outage: bool) -> tuple[int, str, IncidentStore]:
    """One ``logwarden run --follow`` over a Redis stream (on the machine's Redis, which stays up)
    with incidents, ``new_term`` terms and the Slack outbox in ``own_redis``; the entries are fed at
    2,000 a second. With ``outage``, ``own_redis`` is stopped for 4 s once a third is fed. The run
    is stopped (SIGTERM) once every incident is delivered and nothing has changed for 4 s."""
    import signal
    import threading

    workdir.mkdir()
    local = workdir / "local.yaml"
    local.write_text("overrides:\n  - id: log-source-silent\n    enabled: false\n")  # the wall clock's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")} | {
        "LOGWARDEN_REDIS_URL": own_redis.url, "LOGWARDEN_REDIS_PREFIX": prefix,
        "LOGWARDEN_SLACK_TOKEN": TOKEN, "LOGWARDEN_SLACK_CHANNEL": "#security",
        "LOGWARDEN_SLACK_API_URL": slack.api_url, "LOGWARDEN_SLACK_MIN_INTERVAL": "0",
        "LOGWARDEN_SLACK_DIGEST_THRESHOLD": "1000", "LOGWARDEN_MODEL_ENABLED": "false",
        "LOGWARDEN_ALLOWED_LATENESS": "2s", "LOGWARDEN_LOG_FORMAT": "json"}
    err = workdir / "stderr.txt"
    client = redis.Redis.from_url(stream_url)
    store = IncidentStore(RedisBackend(redis.Redis.from_url(own_redis.url, decode_responses=True), prefix))
    with err.open("w") as stderr:
        run = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "-i", f"{stream_url}?stream={stream}",
                                "--follow", "--alerts", str(workdir / "alerts.jsonl"), "--rules",
                                str(ROOT / "rules" / "default.yaml"), "--rules", str(local)],
                               cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr,
                               env=env | {"PYTHONPATH": str(ROOT)})
        try:
            for _ in range(600):
                if "flow_started" in err.read_text():
                    break
                time.sleep(0.05)
            third = threading.Event()

            def feed() -> None:
                step = 100
                for i in range(0, len(entries), step):
                    pipe = client.pipeline(transaction=False)
                    for entry in entries[i:i + step]:
                        pipe.xadd(stream, entry)  # type: ignore[arg-type]
                    pipe.execute()
                    if i >= len(entries) // 3:
                        third.set()
                    time.sleep(0.05)

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            if outage:
                third.wait(60)
                own_redis.stop()
                time.sleep(4)
                own_redis.start()
            feeder.join()
            stable_since, last, deadline = time.monotonic(), None, time.monotonic() + 120
            while time.monotonic() < deadline:
                incidents = store.list()
                state = (len(incidents), sum(i.count for i in incidents), len(store.outbox()), len(slack.calls))
                if state != last:
                    stable_since, last = time.monotonic(), state
                if incidents and not store.outbox() and time.monotonic() - stable_since > 4:
                    break
                time.sleep(0.2)
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(60)
    return code, err.read_text(), store


def _final_messages(slack: Any) -> dict[str, str]:
    """Each incident's Slack message as it finally reads (its post, then its last update)."""
    import re

    by_ts = {c["ts"]: c["body"]["text"] for c in slack.posts(thread=False)}
    for call in slack.ok_calls("chat.update"):
        by_ts[call["body"]["ts"]] = call["body"]["text"]
    out: dict[str, str] = {}
    for text in by_ts.values():
        [incident] = set(re.findall(r"INC-[0-9a-f]+", text))
        out[incident] = text
    return out


def test_a_redis_outage_mid_run_changes_no_incident_and_no_slack_message(
        own_redis: OwnRedis, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    """The same stream twice: once with Redis up throughout, once with the incidents' Redis
    stopped for 4 s in the middle. Same incidents, same Slack messages, exit 0, and the outage
    and its end logged once each (for the incident updates and for the new_term terms)."""
    from logwarden.rules.loader import load_rules
    from logwarden.simulate import simulate
    from tests.fakes import FakeSlack
    from tests.test_recovery import END, _time_ordered_entries

    simulate(tmp_path / "sim", days=1, seed=3, end=END)
    entries = _time_ordered_entries(tmp_path / "sim")
    new_term = {r.meta.id for r in load_rules([ROOT / "rules" / "default.yaml"]).enabled() if r.type == "new_term"}
    runs = {}
    for name, outage in (("control", False), ("outage", True)):
        slack = FakeSlack()
        try:
            code, log_text, store = _follow_run(own_redis, f"{name}:", redis_url, f"{redis_prefix}{name}", slack,
                                                entries, tmp_path / name, outage)
            runs[name] = (code, log_text, sorted((i.id, i.rule_id, i.entity, i.count, i.severity, i.state)
                                                 for i in store.list()), _final_messages(slack))
        finally:
            slack.close()
    (code0, _, incidents0, messages0), (code1, text1, incidents1, messages1) = runs["control"], runs["outage"]
    assert code0 == 0 and code1 == 0, text1[-2000:]
    assert incidents0 and {i[1] for i in incidents0} & new_term  # new_term rules took part
    assert incidents1 == incidents0
    assert messages1 == messages0
    events = [orjson.loads(line)["event"] for line in text1.splitlines() if line.startswith("{")]
    assert "Traceback" not in text1
    assert events.count("redis_outage") == 2 and events.count("redis_back") == 2, events  # incidents, terms

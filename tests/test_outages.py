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

import pytest
import redis
from structlog.testing import capture_logs

from logwarden import outage as outage_module
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentPolicy, IncidentStore
from logwarden.incidents.waiting import WaitingUpdates, read_updates
from tests.fakes import Clock, OwnRedis
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

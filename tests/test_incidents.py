"""The incident store contract, run against the in-memory backend and the real Redis alike."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from logwarden.alerts import Alert
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentError, IncidentPolicy, IncidentStore
from tests.fakes import redis_prefix, redis_url  # noqa: F401 - fixtures

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def alert(aid: str = "a1", rev: int = 0, count: int = 10, rule: str = "ssh-bruteforce",
          entity: str = "203.0.113.5", minute: int = 0) -> Alert:
    start = T0 + timedelta(minutes=minute)
    return Alert(aid, rule, "high", entity, start, start + timedelta(minutes=1), count,
                 f"{count} failed logins", [f"ev-{aid}-{rev}"], ["nist-800-53:AC-7"], rev, "Failed SSH logins")


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[IncidentStore]:
    clock = Clock()
    policy = IncidentPolicy(resolve_after=timedelta(hours=1), repeat_interval=timedelta(hours=4),
                            retention=timedelta(days=7))
    if request.param == "memory":
        yield IncidentStore(MemoryBackend("t:"), policy, clock)
    else:
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        yield IncidentStore(RedisBackend.from_url(url, prefix), policy, clock)


def test_alerts_of_one_fingerprint_are_one_incident(store: IncidentStore) -> None:
    first = store.apply([alert()])
    assert len(first) == 1 and first[0].state == "open" and first[0].count == 10
    store.apply([alert(rev=1, count=25)])
    store.apply([alert("a2", count=12, minute=30)])  # a new burst of the same rule and entity
    [inc] = store.list()
    assert inc.id == first[0].id and inc.count == 37 and inc.version == 3
    assert inc.first_seen == "2026-11-25T10:00:00Z" and inc.last_seen == "2026-11-25T10:31:00Z"
    store.apply([alert("b1", entity="198.51.100.1")])
    assert len(store.list()) == 2


def test_the_same_alert_twice_changes_the_incident_once(store: IncidentStore) -> None:
    store.apply([alert(), alert(rev=1, count=20)])
    before = store.list()[0]
    assert store.apply([alert(), alert(rev=1, count=20)]) == []  # a retry or a replay
    assert store.apply([alert(rev=0)]) == []  # an older revision
    after = store.list()[0]
    assert (after.count, after.version, after.updated_at) == (before.count, before.version, before.updated_at)


def test_changes_are_recorded_in_the_outbox_atomically(store: IncidentStore) -> None:
    [inc] = store.apply([alert()])
    assert store.outbox() == [inc.id]
    store.mark_notified(inc.id, inc.version, {"channel": "C1", "ts": "1.1"}, 0, notified=True)
    assert store.outbox() == []
    store.apply([alert(rev=1, count=30)])
    assert store.outbox() == [inc.id]
    # a change while a delivery was in flight keeps it in the outbox
    stale_version = store.get(inc.id).version  # type: ignore[union-attr]
    store.apply([alert(rev=2, count=40)])
    store.mark_notified(inc.id, stale_version, None, 0, notified=True)
    assert store.outbox() == [inc.id]


def test_ack_resolve_and_history(store: IncidentStore) -> None:
    [inc] = store.apply([alert()])
    acked = store.ack(inc.id, "alice", "looking")
    assert acked.state == "acknowledged" and acked.pending[-1]["kind"] == "acknowledged"
    store.apply([alert(rev=1, count=50)])  # acknowledging keeps counting
    assert store.get(inc.id).count == 50  # type: ignore[union-attr]
    done = store.resolve(inc.id, "bob")
    assert [h["action"] for h in done.history] == ["opened", "acknowledged", "resolved"]
    assert done.history[1]["by"] == "alice" and done.history[1]["note"] == "looking"
    with pytest.raises(IncidentError, match="already resolved"):
        store.ack(inc.id, "carol")
    with pytest.raises(IncidentError, match="no incident"):
        store.ack("INC-nope", "carol")
    [again] = store.apply([alert("a9", minute=90)])  # a new burst after resolution: a new incident
    assert again.id != inc.id and again.state == "open"
    assert store.apply([alert(rev=1, count=50)]) == []  # but an old alert does not reopen anything


def test_auto_resolve_after_a_quiet_period(store: IncidentStore) -> None:
    [inc] = store.apply([alert()])
    clock = store.clock
    assert store.auto_resolve() == []
    clock.now += 3601  # type: ignore[attr-defined]
    [resolved] = store.auto_resolve()
    assert resolved.id == inc.id and resolved.state == "resolved" and resolved.history[-1]["by"] == "logwarden"


def test_repeat_interval_renotifies_an_open_incident_only(store: IncidentStore) -> None:
    [inc] = store.apply([alert()])
    store.mark_notified(inc.id, inc.version, {"channel": "C1", "ts": "1"}, 0, notified=True)
    store.clock.now += 3600  # type: ignore[attr-defined]
    store.apply([alert(rev=1, count=11)])
    assert store.get(inc.id).pending == []  # type: ignore[union-attr]
    store.clock.now += 4 * 3600  # type: ignore[attr-defined]
    store.apply([alert(rev=2, count=12)])
    assert [p["kind"] for p in store.get(inc.id).pending] == ["renotify"]  # type: ignore[union-attr]
    store.mark_notified(inc.id, store.get(inc.id).version, None, 1, notified=True)  # type: ignore[union-attr]
    store.ack(inc.id, "alice")
    store.mark_notified(inc.id, store.get(inc.id).version, None, 1, notified=True)  # type: ignore[union-attr]
    store.clock.now += 5 * 3600  # type: ignore[attr-defined]
    store.apply([alert(rev=3, count=13)])
    assert store.get(inc.id).pending == []  # type: ignore[union-attr]


def test_silences_suppress_notifications_and_expire(store: IncidentStore) -> None:
    sil = store.add_silence("rule", "ssh-bruteforce", timedelta(hours=2), "bob", "pentest")
    [inc] = store.apply([alert()])
    assert inc.silenced_by == sil.id and store.outbox() == []
    assert [s.id for s in store.silences()] == [sil.id] and store.silences()[0].author == "bob"
    store.add_silence("match", "web-*|192.0.2.*", timedelta(hours=1), "bob", "scanner test")
    [web] = store.apply([alert("w1", rule="web-404-burst", entity="192.0.2.9")])
    assert web.silenced_by is not None
    store.clock.now += 2 * 3600 + 1  # type: ignore[attr-defined]
    assert store.silences() == []
    [after] = store.apply([alert(rev=1, count=20)])
    assert after.silenced_by is None and store.outbox() == [after.id]
    with pytest.raises(IncidentError, match="no silence"):
        store.remove_silence("SIL-nope")


def test_resolved_incidents_expire_after_the_retention(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    store = IncidentStore(RedisBackend.from_url(redis_url, redis_prefix),
                          IncidentPolicy(retention=timedelta(days=7)))
    [inc] = store.apply([alert()])
    client = redis.Redis.from_url(redis_url)
    assert client.pttl(f"{redis_prefix}inc:{inc.id}") == -1  # open: kept
    store.resolve(inc.id, "bob")
    ttl = client.pttl(f"{redis_prefix}inc:{inc.id}")
    assert 6.9 * 86400_000 < ttl <= 7 * 86400_000


def _apply_in_process(url: str, prefix: str, worker: int, barrier: threading.Barrier | None) -> None:
    store = IncidentStore(RedisBackend.from_url(url, prefix))
    for k in range(50):
        # Both workers deliver the same alerts (a retry storm) plus their own bursts.
        store.apply([alert("shared", rev=k, count=k + 1), alert(f"w{worker}-{k}", count=1, minute=k)])


def test_two_workers_updating_one_incident_concurrently(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_apply_in_process, args=(redis_url, redis_prefix, w, None)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    [inc] = IncidentStore(RedisBackend.from_url(redis_url, redis_prefix)).list()
    assert inc.count == 50 + 2 * 50  # the shared alert's last count once, plus every own burst
    assert inc.alerts["shared"] == [49, 50, "ssh-bruteforce"]


def test_redis_url_errors_never_echo_the_password() -> None:
    from logwarden.errors import LogwardenError

    with pytest.raises(LogwardenError) as err:
        RedisBackend.from_url("redis://admin:hunter2secret@127.0.0.1:1/0")
    assert "hunter2secret" not in str(err.value) and "LOGWARDEN_REDIS_URL" in str(err.value)


def test_memory_backend_transactions_are_atomic_across_threads() -> None:
    store = IncidentStore(MemoryBackend())
    threads = [threading.Thread(target=lambda w=w: [store.apply([alert(f"t{w}-{k}", count=1, minute=k)])
                                                    for k in range(100)]) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [inc] = store.list()
    assert inc.count == 400


"""Where ``new_term`` rules keep what they learned: in their per-key state, and in Redis when
``LOGWARDEN_REDIS_URL`` is set, so a restart or another worker does not learn everything anew.

Each term is stored with the id of the event that taught it, and each key with the start of its
learning period, so a key rebuilt from Redis judges events exactly as before. A flow resuming from a snapshot
replays events it had already folded; when the replayed event is the very one that taught a
term, the rule treats the term as new again, so an alert that event raised before the crash
(and that may not have reached any output) is raised again, and the outputs' de-duplication
keeps it once."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import redis
import structlog

from logwarden.outage import Outage

log = structlog.get_logger("logwarden.rules.terms")

STARTED = "\x00started"  # the reserved field holding when the key's learning period began
MAX_PENDING = 100_000  # terms waiting for Redis; past it, newer ones are kept in the keys' state only


class TermStore(Protocol):
    def terms(self, rule_id: str, entity: str) -> dict[str, str]: ...
    def add(self, rule_id: str, entity: str, term: str, event_id: str) -> None: ...


class RedisTermStore:
    """One Redis hash per rule and entity, term -> the event that taught it, and ``STARTED`` ->
    when the key's learning period began (ISO 8601): ``<prefix>terms:<rule_id>:<entity>``.

    A Redis outage does not stop the rule (#14): a key built meanwhile starts from what is
    waiting here for it (as without Redis), what is learned waits in a local queue, and once Redis
    answers again the queue is written in order (``HSETNX``: a term written twice, or already
    there, stays as first taught). The outage and its end are logged once each. Shared by the
    workers of a process, so guarded by a lock."""

    def __init__(self, client: Any, prefix: str, max_pending: int = MAX_PENDING) -> None:
        self._client = client
        self._prefix = prefix
        self._max_pending = max_pending
        self._pending: dict[tuple[str, str, str], str] = {}  # (rule, entity, term) -> event id, in order
        self._outage = Outage("new_term terms", "rules go on from their own state; learned terms wait here")
        self._overflowed = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Terms learned while Redis was away and not written yet."""
        return len(self._pending)

    def _key(self, rule_id: str, entity: str) -> str:
        return f"{self._prefix}terms:{rule_id}:{entity}"

    def terms(self, rule_id: str, entity: str) -> dict[str, str]:
        with self._lock:
            if self._reachable():
                try:
                    return dict(self._client.hgetall(self._key(rule_id, entity)))
                except redis.RedisError as exc:
                    self._outage.failed(exc)
            return {term: event for (r, e, term), event in self._pending.items() if r == rule_id and e == entity}

    def add(self, rule_id: str, entity: str, term: str, event_id: str) -> None:
        with self._lock:
            if self._reachable():
                try:
                    self._client.hsetnx(self._key(rule_id, entity), term, event_id)
                    return
                except redis.RedisError as exc:
                    self._outage.failed(exc)
            if len(self._pending) < self._max_pending:
                self._pending.setdefault((rule_id, entity, term), event_id)
            else:
                self._overflowed += 1
                if self._overflowed == 1:
                    log.warning("redis_term_queue_full", waiting=len(self._pending),
                                note="newer terms stay in their keys' state; a restart relearns them")

    def retry(self) -> None:
        """Write what waits if Redis is back (called each second, so terms reconcile even when no
        rule asks for a while)."""
        with self._lock:
            if self._outage.down:
                self._reachable()

    def _reachable(self) -> bool:
        """Up, or back: the queue written first. False while down (tried again every second)."""
        if not self._outage.down:
            return True
        if not self._outage.due():
            return False
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for (rule_id, entity, term), event_id in self._pending.items():
                    pipe.hsetnx(self._key(rule_id, entity), term, event_id)
                pipe.ping()
                pipe.execute()
        except redis.RedisError as exc:
            self._outage.failed(exc)
            return False
        self._outage.recovered(written=len(self._pending), not_kept=self._overflowed)
        self._pending.clear()
        self._overflowed = 0
        return True

"""Where ``new_term`` rules keep what they learned: in their per-key state, and in Redis when
``LOGWARDEN_REDIS_URL`` is set, so a restart or another worker does not learn everything anew.

Each term is stored with the id of the event that taught it, and each key with the start of its
learning period, so a key rebuilt from Redis judges events exactly as before. A flow resuming from a snapshot
replays events it had already folded; when the replayed event is the very one that taught a
term, the rule treats the term as new again, so an alert that event raised before the crash
(and that may not have reached any output) is raised again, and the outputs' de-duplication
keeps it once."""

from __future__ import annotations

from typing import Any, Protocol

STARTED = "\x00started"  # the reserved field holding when the key's learning period began


class TermStore(Protocol):
    def terms(self, rule_id: str, entity: str) -> dict[str, str]: ...
    def add(self, rule_id: str, entity: str, term: str, event_id: str) -> None: ...


class RedisTermStore:
    """One Redis hash per rule and entity, term -> the event that taught it, and ``STARTED`` ->
    when the key's learning period began (ISO 8601): ``<prefix>terms:<rule_id>:<entity>``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, rule_id: str, entity: str) -> str:
        return f"{self._prefix}terms:{rule_id}:{entity}"

    def terms(self, rule_id: str, entity: str) -> dict[str, str]:
        return dict(self._client.hgetall(self._key(rule_id, entity)))

    def add(self, rule_id: str, entity: str, term: str, event_id: str) -> None:
        self._client.hsetnx(self._key(rule_id, entity), term, event_id)

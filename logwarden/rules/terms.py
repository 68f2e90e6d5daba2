"""Where ``new_term`` rules keep what they learned: in their per-key state, and in Redis when
``LOGWARDEN_REDIS_URL`` is set, so a restart or another worker does not learn everything anew."""

from __future__ import annotations

from typing import Any, Protocol


class TermStore(Protocol):
    def terms(self, rule_id: str, entity: str) -> set[str]: ...
    def add(self, rule_id: str, entity: str, term: str) -> None: ...


class RedisTermStore:
    """One Redis set per rule and entity: ``<prefix>terms:<rule_id>:<entity>``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, rule_id: str, entity: str) -> str:
        return f"{self._prefix}terms:{rule_id}:{entity}"

    def terms(self, rule_id: str, entity: str) -> set[str]:
        return set(self._client.smembers(self._key(rule_id, entity)))

    def add(self, rule_id: str, entity: str, term: str) -> None:
        self._client.sadd(self._key(rule_id, entity), term)

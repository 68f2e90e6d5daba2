"""A tiny transactional key-value interface, so the incident logic is written once and runs on
Redis (production) and in memory (the demo) alike.

A transaction reads keys (watched) and buffers writes; the backend applies the writes
atomically, or re-runs the transaction if a watched key changed meanwhile (Redis WATCH/MULTI).
A batch of alerts is then about three round trips, whatever its size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass
class Writes:
    sets: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # key -> (value, ttl ms)
    deletes: set[str] = field(default_factory=set)
    zadds: dict[str, dict[str, float]] = field(default_factory=dict)
    zrems: dict[str, set[str]] = field(default_factory=dict)


class Tx(Protocol):
    def get(self, keys: list[str]) -> list[str | None]: ...
    def zrange(self, key: str, limit: int = -1) -> list[str]: ...
    def set(self, key: str, value: str, ttl_ms: int | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def zadd(self, key: str, member: str, score: float) -> None: ...
    def zrem(self, key: str, member: str) -> None: ...


class Backend(Protocol):
    prefix: str

    def atomic(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` as one atomic transaction (re-run on conflict); return its result."""
        ...

    def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a short exclusive lease (e.g. on one incident's delivery); False if held."""
        ...

    def release(self, name: str, owner: str) -> None: ...


class BufferedWrites:
    """The write half of a transaction: writes are buffered and applied by the backend."""

    def __init__(self) -> None:
        self.writes = Writes()

    def set(self, key: str, value: str, ttl_ms: int | None = None) -> None:
        self.writes.sets[key] = (value, ttl_ms)
        self.writes.deletes.discard(key)

    def delete(self, key: str) -> None:
        self.writes.deletes.add(key)
        self.writes.sets.pop(key, None)

    def zadd(self, key: str, member: str, score: float) -> None:
        self.writes.zadds.setdefault(key, {})[member] = score
        self.writes.zrems.get(key, set()).discard(member)

    def zrem(self, key: str, member: str) -> None:
        self.writes.zrems.setdefault(key, set()).add(member)
        self.writes.zadds.get(key, {}).pop(member, None)


class _MemTx(BufferedWrites):
    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__()
        self._b = backend

    def get(self, keys: list[str]) -> list[str | None]:
        return [self._b.value(k) for k in keys]

    def zrange(self, key: str, limit: int = -1) -> list[str]:
        members = sorted(self._b.zsets.get(key, {}).items(), key=lambda kv: (kv[1], kv[0]))
        out = [m for m, _ in members]
        return out if limit < 0 else out[:limit]


class MemoryBackend:
    """In-process backend for the demo and tests: a lock makes each transaction atomic."""

    def __init__(self, prefix: str = "logwarden:", clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = prefix
        self._lock = threading.RLock()
        self._clock = clock
        self.strings: dict[str, tuple[str, float | None]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    def value(self, key: str) -> str | None:
        item = self.strings.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self._clock() >= expires:
            del self.strings[key]
            return None
        return value

    def atomic(self, fn: Callable[[Tx], T]) -> T:
        with self._lock:
            tx = _MemTx(self)
            result = fn(tx)
            w = tx.writes
            for key in w.deletes:
                self.strings.pop(key, None)
            for key, (value, ttl) in w.sets.items():
                self.strings[key] = (value, self._clock() + ttl / 1000 if ttl else None)
            for key, members in w.zadds.items():
                self.zsets.setdefault(key, {}).update(members)
            for key, gone in w.zrems.items():
                for m in gone:
                    self.zsets.get(key, {}).pop(m, None)
            return result

    def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held[0] != owner and held[1] > self._clock():
                return False
            self._leases[name] = (owner, self._clock() + ttl_ms / 1000)
            return True

    def release(self, name: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(name, (None,))[0] == owner:
                del self._leases[name]


__all__ = ["Backend", "BufferedWrites", "MemoryBackend", "Tx", "Writes"]

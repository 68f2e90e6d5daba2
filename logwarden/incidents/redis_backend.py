"""The Redis backend: WATCH the keys a transaction reads, MULTI/EXEC its writes, re-run on
conflict. Supports ``redis://`` and ``rediss://`` URLs with password or ACL user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.client import Pipeline

from logwarden.errors import LogwardenError
from logwarden.incidents.backend import BufferedWrites, Tx

T = TypeVar("T")
_RETRIES = 50

# Renew a lease only if we still hold it.
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
          "else return 0 end")
# Release a lease only if we still hold it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class _RedisTx(BufferedWrites):
    def __init__(self, pipe: Pipeline) -> None:
        super().__init__()
        self._pipe = pipe

    def get(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        self._pipe.watch(*keys)
        return self._pipe.mget(keys)  # type: ignore[no-any-return]

    def zrange(self, key: str, limit: int = -1) -> list[str]:
        self._pipe.watch(key)
        return self._pipe.zrange(key, 0, limit - 1 if limit > 0 else -1)  # type: ignore[no-any-return]


class RedisBackend:
    def __init__(self, client: redis.Redis, prefix: str = "logwarden:") -> None:
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    @classmethod
    def from_url(cls, url: str, prefix: str = "logwarden:", **kwargs: Any) -> RedisBackend:
        try:
            client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10,
                                          health_check_interval=30, **kwargs)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            # The URL may hold a password: say what failed, never echo the URL.
            raise LogwardenError(f"cannot reach Redis at LOGWARDEN_REDIS_URL: {type(exc).__name__}: "
                                 f"{_safe(str(exc), url)}") from None
        return cls(client, prefix)

    def atomic(self, fn: Callable[[Tx], T]) -> T:
        for _ in range(_RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                tx = _RedisTx(pipe)
                try:
                    result = fn(tx)
                    w = tx.writes
                    pipe.multi()
                    if w.deletes:
                        pipe.delete(*w.deletes)
                    plain = {k: v for k, (v, ttl) in w.sets.items() if ttl is None}
                    if plain:
                        pipe.mset(plain)  # one command for every non-expiring write
                    for key, (value, ttl) in w.sets.items():
                        if ttl is not None:
                            pipe.set(key, value, px=ttl)
                    for key, members in w.zadds.items():
                        if members:
                            pipe.zadd(key, members)
                    for key, gone in w.zrems.items():
                        if gone:
                            pipe.zrem(key, *gone)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue
        raise LogwardenError(f"Redis transaction kept conflicting after {_RETRIES} tries")

    def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        key = f"{self.prefix}lease:{name}"
        if self.client.set(key, owner, nx=True, px=ttl_ms):
            return True
        return bool(self._renew(keys=[key], args=[owner, ttl_ms]))  # ours already: renewed

    def release(self, name: str, owner: str) -> None:
        self._release(keys=[f"{self.prefix}lease:{name}"], args=[owner])


def _safe(message: str, url: str) -> str:
    return message.replace(url, "<LOGWARDEN_REDIS_URL>")

"""How logwarden lives through Redis going away, in one place: when to try it again (once a
second at most, not once per event), and the outage and its end logged once each."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("logwarden.outage")

RETRY_SECONDS = 1.0  # while Redis is away, how often the next call tries it again


class Outage:
    """The state of one component's Redis: up, or away since when, and when to try again."""

    def __init__(self, what: str, note: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.note, self._clock = what, note, clock
        self.since: float | None = None  # when (clock) the outage began; None while Redis answers
        self.count = 0  # outages so far
        self._next_try = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def due(self) -> bool:
        """Up, or away long enough to be tried again."""
        return self.since is None or self._clock() >= self._next_try

    def retry_now(self) -> None:
        self._next_try = 0.0

    def failed(self, exc: Exception) -> None:
        now = self._clock()
        if self.since is None:
            self.since = now
            self.count += 1
            log.warning("redis_outage", what=self.what, error=f"{type(exc).__name__}: {exc}", note=self.note)
        self._next_try = now + RETRY_SECONDS

    def recovered(self, **done: Any) -> None:
        if self.since is not None:
            log.info("redis_back", what=self.what, after_s=round(self._clock() - self.since, 1), **done)
        self.since = None

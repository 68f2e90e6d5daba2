"""Incident updates that wait while Redis is away (#14): the flow goes on watching.

The flow hands each batch of alerts to ``WaitingUpdates.apply`` instead of the store. While Redis
answers, that is the store's own ``apply``. When it does not, the batch waits here, in order,
and the outage is logged once; every later batch (at most once a second) tries Redis again
with everything waiting first, and the recovery is logged once. The store orders a batch by
its alerts' event time, so applying what waited together with what came after is applying it
all in order, and an alert applied twice (the same id and revision) changes nothing.

Past ``max_waiting`` alerts, the waiting ones go to a file (JSON lines of ``Alert.to_record``)
instead of memory. At the end of a finite run whose Redis never came back, ``finish`` writes
what still waits to that file and says how many and where: ``logwarden incidents apply FILE``
applies them once Redis is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
import structlog

from logwarden.alerts import Alert
from logwarden.outage import Outage

log = structlog.get_logger("logwarden.incidents")

MAX_WAITING = 100_000  # alerts kept in memory; past it they go to the spill file


class WaitingUpdates:
    def __init__(self, apply: Callable[[list[Alert]], list[Any]], spill_dir: Path,
                 max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic,
                 ping: Callable[[], Any] | None = None) -> None:
        """``ping``: a cheap call to Redis, so a spill file is read back only once it answers."""
        self._apply = apply
        self._spill_dir = spill_dir
        self._max_waiting = max_waiting
        self._ping = ping
        self._waiting: list[Alert] = []
        self._lock = threading.RLock()  # the flow's sink and the retry loop both call in
        self.spill: Path | None = None  # where alerts past max_waiting wait
        self._spilled = 0
        self._outage = Outage("incident updates", "the flow goes on; updates wait and are applied in order "
                              "when Redis is back", clock)

    @property
    def outages(self) -> int:
        """How many times Redis went away during the run."""
        return self._outage.count

    @property
    def waiting(self) -> int:
        return len(self._waiting) + self._spilled

    def apply(self, alerts: list[Alert]) -> list[Any]:
        """The incidents that changed (none while Redis is away: the alerts wait)."""
        with self._lock:
            return self._apply_now(alerts)

    def _apply_now(self, alerts: list[Alert]) -> list[Any]:
        if not self._outage.due():
            self._wait(alerts)
            return []
        try:
            if self._spilled and self._ping is not None:
                self._ping()
            batch = self._read_spill() + self._waiting + alerts
            changed = self._apply(batch)
        except redis.RedisError as exc:
            self._outage.failed(exc)
            self._wait(alerts)
            return []
        self._outage.recovered(applied=len(batch) - len(alerts))
        self._waiting = []
        self._drop_spill()
        return changed

    def retry(self) -> list[Any]:
        """Try Redis now with what waits (at the end of a run, before the last notifications)."""
        with self._lock:
            if not self.waiting:
                return []
            self._outage.retry_now()
            return self._apply_now([])

    def finish(self) -> str | None:
        """At the end of a run: one last try; if updates still wait, they are written to the spill
        file and the one line to tell the user is returned."""
        self.retry()
        with self._lock:
            if not self.waiting:
                return None
            self._spill_all()
        return (f"{self.waiting} incident update(s) wait in {self.spill}: Redis did not come back before the "
                f"run ended (the alerts file and the audit trail are complete); once it is back, "
                f"run `logwarden incidents apply {self.spill}`")

    def state(self) -> dict[str, Any]:
        """What waits, for the recovery snapshot: a run killed during an outage resumes with it
        (the flow will not emit these alerts again, they were decided before the snapshot)."""
        with self._lock:
            return {"waiting": [alert.to_record() for alert in self._waiting],
                    "spill": str(self.spill) if self._spilled and self.spill is not None else None}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Take back what waited at the snapshot a resumed run starts from. Alerts the spill file
        got after that snapshot come again from the replay; applying one twice changes nothing."""
        if not state:
            return
        with self._lock:
            self._waiting = [Alert.from_record(record) for record in state["waiting"]] + self._waiting
            if state.get("spill") and Path(state["spill"]).exists():
                self.spill = Path(state["spill"])
                self._spilled = len(read_updates(self.spill))
        if self.waiting:
            log.info("redis_waiting_restored", waiting=self.waiting)

    # -- internals -------------------------------------------------------------------------
    def _wait(self, alerts: list[Alert]) -> None:
        self._waiting += alerts
        if len(self._waiting) > self._max_waiting:
            if self._spilled == 0:
                log.warning("redis_waiting_spilled", waiting=len(self._waiting), file=str(self._spill_path()))
            self._spill_all()

    def _spill_path(self) -> Path:
        if self.spill is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            self.spill = self._spill_dir / f"waiting-incident-updates-{stamp}.jsonl"
        return self.spill

    def _spill_all(self) -> None:
        if not self._waiting:
            return
        path = self._spill_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            for alert in self._waiting:
                f.write(orjson.dumps(alert.to_record()) + b"\n")
        self._spilled += len(self._waiting)
        self._waiting = []

    def _read_spill(self) -> list[Alert]:
        return read_updates(self.spill) if self._spilled and self.spill is not None else []

    def _drop_spill(self) -> None:
        if self._spilled and self.spill is not None:
            self.spill.unlink(missing_ok=True)
            self.spill, self._spilled = None, 0


def read_updates(path: Path) -> list[Alert]:
    """The alerts of a spill file, in the order they were written."""
    return [Alert.from_record(orjson.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]

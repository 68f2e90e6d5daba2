"""The rule contract: a rule is a frozen dataclass of its configuration plus pure functions over
a small, picklable state. The engine feeds it events of one group key in event-time order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from logwarden.alerts import MAX_EVIDENCE, Alert, make_alert_id
from logwarden.event import Event

Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class RuleMeta:
    id: str
    description: str
    severity: str
    group_by: str  # ECS field whose value is the alert's entity
    tags: tuple[str, ...] = ()
    enabled: bool = True


class Rule(Protocol):
    type: ClassVar[str]
    meta: RuleMeta

    def relevant(self, event: Event) -> bool:
        """Could this event change the rule's state? Others never reach the rule stage."""
        ...

    def init(self) -> Any:
        """A fresh per-key state (plain, picklable)."""
        ...

    def fold(self, state: Any, entity: str, event: Event) -> Alert | None:
        """Take one event (in event-time order); an alert when it fires or updates."""
        ...

    def close(self, state: Any, entity: str, watermark: datetime | None) -> Alert | None:
        """Finish what the watermark (None: end of input) has closed; a final update or None."""
        ...

    def idle(self, state: Any, watermark: datetime) -> bool:
        """True when the state holds nothing that a later event could still need."""
        ...


@dataclass
class Burst:
    """An alert in progress: opened when the condition became true, updated while it holds."""

    alert_id: str
    start: datetime
    end: datetime
    count: int
    evidence: list[str] = field(default_factory=list)
    revision: int = 0
    reported_count: int = 0

    @classmethod
    def open(cls, meta: RuleMeta, entity: str, events: list[tuple[datetime, str]]) -> Burst:
        first_id = events[0][1]
        return cls(make_alert_id(meta.id, entity, first_id), events[0][0], events[-1][0],
                   len(events), [ref for _, ref in events[:MAX_EVIDENCE]])

    def add(self, ts: datetime, ref: str) -> None:
        self.count += 1
        self.end = max(self.end, ts)
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(ref)

    def alert(self, meta: RuleMeta, entity: str, summary: str) -> Alert:
        self.reported_count = self.count
        alert = Alert(self.alert_id, meta.id, meta.severity, entity, self.start, self.end,
                      self.count, summary, list(self.evidence), list(meta.tags), self.revision,
                      meta.description)
        self.revision += 1
        return alert


def window_expired(last: datetime, watermark: datetime | None, window: timedelta) -> bool:
    return watermark is None or watermark - last > window

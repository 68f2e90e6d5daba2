"""The rule contract: a rule is a frozen dataclass of its configuration plus pure functions over
a small, picklable state. The engine feeds it events of one group key in event-time order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from logwarden.alerts import MAX_EVIDENCE, Alert, make_alert_id
from logwarden.event import Event
from logwarden.rules.conditions import Predicate


class Params(BaseModel):
    """Base of every rule type's parameter model: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


@dataclass(frozen=True)
class RuleMeta:
    id: str
    description: str
    severity: str
    group_by: str  # ECS field whose value is the alert's entity
    tags: tuple[str, ...] = ()
    enabled: bool = True
    # New incidents a day (noise budget): a number, None (`budget: null`: no limit, for critical
    # rules), or "default" (no `budget:` key: LOGWARDEN_RULE_BUDGET applies).
    budget: int | Literal["default"] | None = "default"
    # ECS fields whose values in the event that fires the alert are entities it links to its
    # incident (``link: [user.name]`` on a rule grouped by source.ip: the account logged into).
    link: tuple[str, ...] = ()


class Rule(Protocol):
    """A rule type: a frozen dataclass built from ``meta`` and its validated ``Params``."""

    type: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
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

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: Any) -> Rule:
        """The rule from its metadata, compiled condition and validated ``Params``."""
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


@dataclass
class BurstState:
    """The part of every rule's state that tracks an alert in progress."""

    burst: Burst | None = None


def extend_burst(state: BurstState, ts: datetime, ref: str, window: timedelta) -> bool:
    """Add the event to the open burst if it continues it (within ``window`` of its end)."""
    burst = state.burst
    if burst is not None and ts - burst.end <= window:
        burst.add(ts, ref)
        return True
    return False


def close_burst(state: BurstState, meta: RuleMeta, entity: str, watermark: datetime | None,
                window: timedelta, summary: Callable[[Burst], str]) -> Alert | None:
    """Close a burst the watermark has passed; its final update when it grew since reported."""
    burst = state.burst
    if burst is None or not window_expired(burst.end, watermark, window):
        return None
    state.burst = None
    if burst.count == burst.reported_count:
        return None
    return burst.alert(meta, entity, summary(burst))


def describe(e: Event) -> str:
    """A one-line account of an event for alert summaries (from already-redacted fields)."""
    who = e.user_name or e.source_ip or "?"
    what = e.action or "event"
    parts = [f"{what} by {who}"]
    if e.user_name and e.source_ip:
        parts.append(f"from {e.source_ip}")
    if e.resource and e.resource != e.host_name:
        parts.append(f"on {e.resource}")
    elif e.url_path:
        parts.append(f"on {e.url_path}")
    return " ".join(parts)

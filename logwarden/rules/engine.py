"""Runs the rules of one group key over its events in event time.

Events are folded in (timestamp, source, line) order, which makes results independent of how
sources interleave and of how many workers run. Two modes:

- live (``lateness`` set): events wait in a small buffer until the key's watermark (the newest
  event time seen minus the allowed lateness) passes them. An event older than the watermark at
  its arrival is *late*: it is reported as a ``late_event`` violation, never silently dropped.
  Rules whose condition can only become true as events arrive (``fires_on_arrival``: match,
  threshold, distinct count) do not wait: a copy of their state runs *ahead* over the buffered
  events as they arrive and an alert is told at once. The watermark's fold stays the authority:
  what it finds again is not told twice, what it finds more (a late event that joined the burst,
  the burst's end) is told as a new revision of the alert already told, under its id.
- replay (``lateness`` None): several files read together are not aligned in event time (one
  may be read hours ahead of another), so a key's events are folded only at the end of input,
  exactly as a single time-ordered merge of the files would give. Only events some rule could
  match reach the engine, and ``replay_cap`` bounds a key's buffer: past it the oldest events
  are folded early.
"""

from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Rule
from logwarden.violation import Violation, excerpt


@dataclass
class KeyState:
    """Everything one key holds; plain values only, so it pickles for snapshots."""

    key: str = ""
    buffer: list[tuple[datetime, str, int, Event]] = field(default_factory=list)
    newest: datetime | None = None
    rule_states: dict[str, Any] = field(default_factory=dict)
    # Live runs, rules that fire on arrival: their states run ahead over the buffer ...
    ahead: dict[str, Any] = field(default_factory=dict)
    ahead_newest: datetime | None = None  # the newest event folded ahead (an older one: rebuild)
    # ... and what has been told of their alerts: id -> [revision, count, end, rule id, confirmed
    # by the watermark's fold]; ``alias`` maps an id the fold gave a burst to the id told for it.
    told: dict[str, list[Any]] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)
    ahead_paused: bool = False  # a rebuild over a huge buffer is skipped: the fold alone tells

    def __setstate__(self, saved: dict[str, Any]) -> None:
        """A snapshot of an older version lacks the newer fields: they start empty."""
        self.__dict__.update({**KeyState().__dict__, **saved})


REBUILD_CAP = 5_000  # buffered events a rebuild of the states ahead may fold at once


class KeyEngine:
    def __init__(self, key: str, rules: list[Rule], lateness: timedelta | None,
                 state: KeyState | None = None, replay_cap: int = 100_000) -> None:
        self.key = key
        self.entity = key.split("=", 1)[1] if "=" in key else key
        self.rules = rules
        self.lateness = lateness
        self.replay_cap = replay_cap
        self.state = state or KeyState(key)
        # Live runs: the rules that fire on arrival (none in replays, which stay exact).
        self._eager = [r for r in rules if getattr(r, "fires_on_arrival", False)] if lateness is not None else []

    def on_events(self, events: list[Event]) -> tuple[list[Alert], list[Violation]]:
        st = self.state
        late: list[Violation] = []
        early: list[Alert] = []
        # The states ahead must hold every buffered event: missing (a new rule state) or paused,
        # they are folded again from the buffer.
        rebuild = bool(self._eager) and bool(st.buffer) and (
            st.ahead_paused or any(r.meta.id not in st.ahead for r in self._eager))
        for e in events:
            ts = e.timestamp
            assert ts is not None
            watermark = self._watermark()
            if watermark is not None and ts < watermark:
                late.append(_late(e, watermark))
                continue
            heapq.heappush(st.buffer, (ts, e.source, e.line, e))
            if st.newest is None or ts > st.newest:
                st.newest = ts
            if self._eager and not rebuild and not st.ahead_paused:
                if st.ahead_newest is not None and ts < st.ahead_newest:
                    rebuild = True  # out of order: the states ahead are folded again below
                else:
                    early += self._ahead(e)
        if self.lateness is None and len(st.buffer) > self.replay_cap:
            # Bounded memory: fold the oldest down to half the cap; exact unless one key alone
            # floods the replay with more than replay_cap rule-relevant events.
            cut = heapq.nsmallest(len(st.buffer) - self.replay_cap // 2, st.buffer)[-1][0]
            return self._advance(cut), late
        watermark = self._watermark()
        folded = self._advance(watermark) if watermark is not None else []
        if rebuild:
            early += self._run_ahead()
        return self._tell(early, folded), late

    def _ahead(self, event: Event) -> list[Alert]:
        """Fold one event, in order, into the states running ahead; the alerts they fire."""
        st = self.state
        out = []
        for rule in self._eager:
            rstate = st.ahead.get(rule.meta.id)
            if rstate is None:
                committed = st.rule_states.get(rule.meta.id)
                rstate = st.ahead[rule.meta.id] = copy.deepcopy(committed) if committed is not None else rule.init()
            rule.close(rstate, self.entity, event.timestamp)  # its updates are the fold's to tell
            alert = rule.fold(rstate, self.entity, event)
            if alert is not None:
                if rule.meta.link:
                    alert.related = linked(event, rule.meta.link, self.entity)
                out.append(alert)
        st.ahead_newest = event.timestamp
        return out

    def _run_ahead(self) -> list[Alert]:
        """After an out-of-order arrival: the states ahead again, from the folded states over the
        whole buffer in event-time order."""
        st = self.state
        st.ahead, st.ahead_newest = {}, None
        st.ahead_paused = len(st.buffer) > REBUILD_CAP  # bounded work; resumed once the fold catches up
        if st.ahead_paused:
            return []
        for rule in self._eager:
            committed = st.rule_states.get(rule.meta.id)
            st.ahead[rule.meta.id] = copy.deepcopy(committed) if committed is not None else rule.init()
        out = []
        for _, _, _, event in sorted(st.buffer, key=lambda item: item[:3]):
            out += self._ahead(event)
        return out

    def _tell(self, early: list[Alert], folded: list[Alert]) -> list[Alert]:
        """What to say: each alert fired ahead once (rev 0); the fold's alerts of the same bursts
        only when they add something, as the next revision of the id told."""
        if not self._eager:
            return folded
        eager = {r.meta.id: r for r in self._eager}
        st = self.state
        out = []
        for alert in early:
            if alert.alert_id in st.told or alert.alert_id in st.alias:
                continue
            told = self._told_for(alert, eager)
            if told is not None:  # the same burst, begun at another event after a rebuild
                st.alias[alert.alert_id] = told
                continue
            st.told[alert.alert_id] = [alert.revision, alert.count, alert.end, alert.rule_id, False]
            out.append(alert)
        for alert in folded:
            if alert.rule_id not in eager:
                out.append(alert)
                continue
            aid = st.alias.get(alert.alert_id, alert.alert_id)
            if aid not in st.told and (told := self._told_for(alert, eager)) is not None:
                st.alias[alert.alert_id] = aid = told
            entry = st.told.get(aid)
            if entry is None:
                st.told[aid] = [alert.revision, alert.count, alert.end, alert.rule_id, True]
                out.append(alert)
                continue
            entry[4] = True
            if (alert.count, alert.end) == (entry[1], entry[2]) and not alert.resolved:
                continue  # told already, ahead
            entry[0], entry[1], entry[2] = entry[0] + 1, alert.count, alert.end
            alert.alert_id, alert.revision = aid, entry[0]
            out.append(alert)
        self._forget()
        return out

    def _told_for(self, alert: Alert, eager: dict[str, Rule]) -> str | None:
        """An alert told ahead, not yet found by the fold, of the same rule and burst (it began
        within the rule's window of that one's end): the id to tell this one under."""
        window = getattr(eager[alert.rule_id], "window", timedelta(0))
        for aid, (_, _, end, rule_id, confirmed) in self.state.told.items():
            if rule_id == alert.rule_id and not confirmed and alert.start <= end + window:
                return aid
        return None

    def _forget(self) -> None:
        """Drop what was told of bursts the watermark has long passed (bounded state)."""
        st, watermark = self.state, self._watermark()
        if watermark is None or not st.told:
            return
        windows = {r.meta.id: getattr(r, "window", timedelta(0)) for r in self._eager}
        gone = {aid for aid, (_, _, end, rule_id, confirmed) in st.told.items()
                if confirmed and watermark - end > 2 * windows.get(rule_id, timedelta(0))}
        for aid in gone:
            del st.told[aid]
        st.alias = {k: v for k, v in st.alias.items() if v not in gone}

    def _watermark(self) -> datetime | None:
        if self.lateness is None or self.state.newest is None:
            return None
        return self.state.newest - self.lateness

    def flush(self) -> list[Alert]:
        """End of input: fold everything and close every open burst."""
        alerts = self._tell([], self._advance(None))
        st = self.state
        st.ahead, st.ahead_newest = {}, None  # the fold has caught up with everything
        return alerts

    def _advance(self, watermark: datetime | None) -> list[Alert]:
        st = self.state
        alerts: list[Alert] = []
        while st.buffer and (watermark is None or st.buffer[0][0] <= watermark):
            ts, _, _, event = heapq.heappop(st.buffer)
            for rule in self.rules:
                rstate = st.rule_states.get(rule.meta.id)
                if rstate is None:
                    rstate = st.rule_states[rule.meta.id] = rule.init()
                # A gap longer than the rule's window closes what was open before this event.
                closed = rule.close(rstate, self.entity, ts)
                if closed is not None:
                    alerts.append(closed)
                alert = rule.fold(rstate, self.entity, event)
                if alert is not None:
                    if rule.meta.link:
                        alert.related = linked(event, rule.meta.link, self.entity)
                    alerts.append(alert)
        for rule in self.rules:
            rstate = st.rule_states.get(rule.meta.id)
            if rstate is not None:
                closed = rule.close(rstate, self.entity, watermark)
                if closed is not None:
                    alerts.append(closed)
        return alerts

    def tick(self, now: datetime) -> list[Alert]:
        """Live runs: let clock-driven rules (``silence``) see time pass without events."""
        out: list[Alert] = []
        for rule in self.rules:
            if getattr(rule, "clock_driven", False):
                rstate = self.state.rule_states.get(rule.meta.id)
                if rstate is not None:
                    alert = rule.tick(rstate, self.entity, now)  # type: ignore[attr-defined]
                    if alert is not None:
                        out.append(alert)
        return out

    @property
    def clock_driven(self) -> bool:
        return any(getattr(rule, "clock_driven", False) for rule in self.rules)

    def idle(self) -> bool:
        """Nothing buffered and no rule state a later event could need: the key can be freed."""
        st = self.state
        watermark = self._watermark()
        if st.buffer or watermark is None:
            return not st.buffer and not st.rule_states
        return all(rule.idle(st.rule_states[rule.meta.id], watermark)
                   for rule in self.rules if rule.meta.id in st.rule_states)


def _late(e: Event, watermark: datetime) -> Violation:
    lag = watermark - e.timestamp if e.timestamp else timedelta(0)
    return Violation(e.source, e.line, "late_event",
                     f"event arrived {lag.total_seconds():.0f}s behind the watermark of "
                     f"{e.source_ip or e.user_name or 'its key'} (beyond the allowed lateness)",
                     "dropped", excerpt(f"{e.action} {e.user_name or ''} {e.source_ip or ''}"),
                     e.dataset, e.timestamp, e.id)


def linked(event: Event, fields: tuple[str, ...], entity: str) -> list[str]:
    """The entities an alert links to its incident: the values of the rule's ``link`` fields in
    the event that fired it (not the alert's own entity, no empties, no repeats)."""
    out: list[str] = []
    for name in fields:
        value = event.get(name)
        if value not in (None, "") and not isinstance(value, list | dict) and str(value) != entity \
                and str(value) not in out:
            out.append(str(value))
    return out

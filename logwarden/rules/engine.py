"""Runs the rules of one group key over its events in event time.

Events are folded in (timestamp, source, line) order, which makes results independent of how
sources interleave and of how many workers run. Two modes:

- live (``lateness`` set): events wait in a small buffer until the key's watermark passes them.
  Each event comes with its source's mark (``lateness.SourceMark``: the source's newest event
  time, its allowed lateness and the delay it learned); the key's watermark is the lowest of its
  active sources' newest minus allowed lateness, so a key fed by one prompt source is never held
  back by a slow one elsewhere, and a source idle here for longer than its lateness (on the
  clock) stops holding the key back. An event older than the key's watermark at its arrival is
  *late*: a ``late_event`` violation, never silently dropped. (Without marks, as in unit tests,
  the key's events are one source with ``lateness`` as its allowed lateness.)
  Rules whose condition can only become true as events arrive (``fires_on_arrival``: match,
  threshold, distinct count, the upward side of spike) do not wait: a copy of their state runs
  *ahead* over the buffered events as they arrive and an alert is told at once. Order-sensitive
  rules that keep no outside state (``provisional``: sequence) run ahead too, but only up to the
  *learned* watermark (newest minus the disorder the sources actually showed), so they fire
  seconds after a prompt source's event instead of after its whole allowed lateness; an event
  that arrives behind that point (still within its lateness) folds them again. The watermark's
  fold stays the authority: what it finds again is not told twice, what it finds more (a late
  event that joined the burst, the burst's end) is told as a new revision of the alert already
  told, under its id.
- replay (``lateness`` None): several files read together are not aligned in event time (one
  may be read hours ahead of another), so a key's events are folded only once the replay's
  watermark has passed them (``fold_before``: one worker, ``logwarden.replay``) or at the end of
  input, exactly as a single time-ordered merge of the files would give. Only events some rule
  could match reach the engine, and ``replay_cap`` bounds a key's buffer: past it the oldest
  events are folded early.
"""

from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.lateness import SourceMark, late_event
from logwarden.rules.base import Rule
from logwarden.violation import Violation


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
    # Live runs: per source feeding this key, [newest event time, allowed lateness, learned
    # delay, when (on the clock) it last sent an event here].
    sources: dict[str, list[Any]] = field(default_factory=dict)
    fast: datetime | None = None  # the provisional rules' states ahead have folded up to here

    def __setstate__(self, saved: dict[str, Any]) -> None:
        """A snapshot of an older version lacks the newer fields: they start empty."""
        self.__dict__.update({**KeyState().__dict__, **saved})


REBUILD_CAP = 5_000  # buffered events a rebuild of the states ahead may fold at once
IDLE_MIN = timedelta(seconds=5)  # a source idle here this long (and its lateness) no longer holds the key


class KeyEngine:
    def __init__(self, key: str, rules: list[Rule], lateness: timedelta | None,
                 state: KeyState | None = None, replay_cap: int = 100_000) -> None:
        self.key = key
        self.entity = key.split("=", 1)[1] if "=" in key else key
        self.rules = rules
        self._ids = [(r, r.meta.id) for r in rules]  # read once, not per event and rule
        self.lateness = lateness
        self.replay_cap = replay_cap
        self.state = state or KeyState(key)
        live = lateness is not None
        # Live runs: the rules that fire on arrival, and those that fire at the learned
        # watermark (none in replays, which stay exact).
        self._eager = [r for r in rules if getattr(r, "fires_on_arrival", False)] if live else []
        self._provisional = [r for r in rules if getattr(r, "provisional", False)] if live else []
        self._told_rules = {r.meta.id: r for r in [*self._eager, *self._provisional]}
        self._now: datetime | None = None

    def on_events(self, events: list[Event], marks: list[SourceMark] | None = None,
                  now: datetime | None = None) -> tuple[list[Alert], list[Violation]]:
        """Take a batch of this key's events (with their sources' marks in live runs; ``now``:
        the clock, to tell sources gone idle here): the alerts to tell and the late events."""
        st = self.state
        self._now = now
        late: list[Violation] = []
        early: list[Alert] = []
        # The states ahead must hold every buffered event: missing (a new rule state) or paused,
        # they are folded again from the buffer.
        rebuild = bool(self._eager) and bool(st.buffer) and (
            st.ahead_paused or any(r.meta.id not in st.ahead for r in self._eager))
        refold = False  # an event behind the provisional rules' point: they are folded again
        live = self.lateness is not None
        # Marked events were checked against their own source's lateness already; here they
        # are checked against the key's watermark before this batch (a source back from idle).
        watermark = self._watermark() if live else None
        seen: SourceMark | None = None
        for i, e in enumerate(events):
            ts = e.timestamp
            assert ts is not None
            if live:
                if marks is None:
                    self._saw(SourceMark("", ts, self.lateness, self.lateness))  # type: ignore[arg-type]
                    watermark = self._watermark()
                elif marks[i] is not seen:
                    self._saw(seen := marks[i])
                if watermark is not None and ts < watermark:
                    late.append(late_event(e, watermark - ts, e.source_ip or e.user_name or "its key"))
                    continue
            heapq.heappush(st.buffer, (ts, e.source, e.line, e))
            if st.newest is None or ts > st.newest:
                st.newest = ts
            if st.fast is not None and ts <= st.fast:
                refold = True
            if self._eager and not rebuild and not st.ahead_paused:
                if st.ahead_newest is not None and ts < st.ahead_newest:
                    rebuild = True  # out of order: the states ahead are folded again below
                else:
                    early += self._ahead(e)
        if not live and len(st.buffer) > self.replay_cap:
            # Bounded memory: fold the oldest down to half the cap; exact unless one key alone
            # floods the replay with more than replay_cap rule-relevant events.
            cut = heapq.nsmallest(len(st.buffer) - self.replay_cap // 2, st.buffer)[-1][0]
            return self._advance(cut), late
        watermark = self._watermark()
        folded = self._advance(watermark) if watermark is not None else []
        if rebuild:
            early += self._run_ahead()
        if self._provisional and watermark is not None:
            early += self._provisional_to(self._watermark(fast=True), watermark, refold)
        return self._tell(early, folded), late

    def _saw(self, mark: SourceMark) -> None:
        """Note what an event tells of its source: its progress, lateness, and that it is active."""
        rec = self.state.sources.get(mark.source)
        if rec is None:
            self.state.sources[mark.source] = [mark.newest, mark.bound, mark.learned, self._now]
            return
        if mark.newest > rec[0]:
            rec[0] = mark.newest
        rec[1], rec[2], rec[3] = mark.bound, mark.learned, self._now

    def _provisional_to(self, horizon: datetime | None, watermark: datetime, refold: bool) -> list[Alert]:
        """Fold the buffered events up to ``horizon`` (the learned watermark) into the
        provisional rules' states ahead; the alerts they fire."""
        st = self.state
        too_big = len(st.buffer) > REBUILD_CAP
        if too_big or (st.fast is not None and watermark >= st.fast):
            for rule in self._provisional:  # the fold has caught up (or the buffer is too big)
                st.ahead.pop(rule.meta.id, None)
            st.fast = None
        if too_big or horizon is None or horizon <= watermark:
            return []
        low = st.fast
        if refold or low is None or any(r.meta.id not in st.ahead for r in self._provisional):
            for rule in self._provisional:  # they start anew from the folded states
                st.ahead[rule.meta.id] = self._fresh(rule)
            low = None
        elif horizon <= low:
            return []
        out = []
        for _, _, _, event in sorted((item for item in st.buffer if (low is None or item[0] > low)
                                      and item[0] <= horizon), key=lambda item: item[:3]):
            out += [a for rule in self._provisional if (a := self._step(rule, event)) is not None]
        st.fast = horizon
        return out

    def _ahead(self, event: Event) -> list[Alert]:
        """Fold one event, in order, into the states running ahead; the alerts they fire."""
        st = self.state
        for rule in self._eager:
            if rule.meta.id not in st.ahead:
                st.ahead[rule.meta.id] = self._fresh(rule)
        out = [a for rule in self._eager if (a := self._step(rule, event)) is not None]
        st.ahead_newest = event.timestamp
        return out

    def _fresh(self, rule: Rule) -> Any:
        """A state to run ahead: a copy of the rule's folded state (or a new one)."""
        committed = self.state.rule_states.get(rule.meta.id)
        return copy.deepcopy(committed) if committed is not None else rule.init()

    def _step(self, rule: Rule, event: Event) -> Alert | None:
        """One event, in order, into the rule's state ahead (what its gap closes is the fold's to tell)."""
        rstate = self.state.ahead[rule.meta.id]
        rule.close(rstate, self.entity, event.timestamp)
        if event.relevant is not None and rule.meta.id not in event.relevant:
            return None
        return self._fold(rule, rstate, event)

    def _fold(self, rule: Rule, rstate: Any, event: Event) -> Alert | None:
        alert = rule.fold(rstate, self.entity, event)
        if alert is not None and rule.meta.link:
            alert.related = linked(event, rule.meta.link, self.entity)
        return alert

    def _run_ahead(self) -> list[Alert]:
        """After an out-of-order arrival: the states ahead again, from the folded states over the
        whole buffer in event-time order."""
        st = self.state
        for rule in self._eager:
            st.ahead.pop(rule.meta.id, None)
        st.ahead_newest = None
        st.ahead_paused = len(st.buffer) > REBUILD_CAP  # bounded work; resumed once the fold catches up
        if st.ahead_paused:
            return []
        for rule in self._eager:
            st.ahead[rule.meta.id] = self._fresh(rule)
        out = []
        for _, _, _, event in sorted(st.buffer, key=lambda item: item[:3]):
            out += self._ahead(event)
        return out

    def _tell(self, early: list[Alert], folded: list[Alert]) -> list[Alert]:
        """What to say: each alert fired ahead once (rev 0); the fold's alerts of the same bursts
        only when they add something, as the next revision of the id told."""
        if not self._told_rules:
            return folded
        st = self.state
        out = []
        for alert in early:
            if alert.alert_id in st.told or alert.alert_id in st.alias:
                continue
            told = self._told_for(alert)
            if told is not None:  # the same burst, begun at another event after a rebuild
                st.alias[alert.alert_id] = told
                continue
            st.told[alert.alert_id] = [alert.revision, alert.count, alert.end, alert.rule_id, False]
            out.append(alert)
        for alert in folded:
            if alert.rule_id not in self._told_rules:
                out.append(alert)
                continue
            aid = st.alias.get(alert.alert_id, alert.alert_id)
            if aid not in st.told and (told := self._told_for(alert)) is not None:
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

    def _told_for(self, alert: Alert) -> str | None:
        """An alert told ahead, not yet found by the fold, of the same rule and burst (it began
        within the rule's window of that one's end): the id to tell this one under."""
        window = getattr(self._told_rules[alert.rule_id], "window", timedelta(0))
        for aid, (_, _, end, rule_id, confirmed) in self.state.told.items():
            if rule_id == alert.rule_id and not confirmed and alert.start <= end + window:
                return aid
        return None

    def _forget(self) -> None:
        """Drop what was told of bursts the watermark has long passed (bounded state)."""
        st, watermark = self.state, self._watermark()
        if watermark is None or not st.told:
            return
        windows = {rid: getattr(r, "window", timedelta(0)) for rid, r in self._told_rules.items()}
        gone = {aid for aid, (_, _, end, rule_id, confirmed) in st.told.items()
                if confirmed and watermark - end > 2 * windows.get(rule_id, timedelta(0))}
        for aid in gone:
            del st.told[aid]
        st.alias = {k: v for k, v in st.alias.items() if v not in gone}

    def _watermark(self, fast: bool = False) -> datetime | None:
        """The lowest of the active sources' newest event minus their allowed lateness (``fast``:
        minus the delay they learned); None in replays."""
        st = self.state
        if self.lateness is None or st.newest is None:
            return None
        if not st.sources:  # a snapshot from before sources were tracked
            return st.newest - self.lateness
        now, active, every = self._now, None, None
        for newest, bound, learned, seen in st.sources.values():
            mark = newest - (learned if fast else bound)
            every = mark if every is None or mark < every else every
            if now is None or seen is None or now - seen <= max(bound, IDLE_MIN):
                active = mark if active is None or mark < active else active
        return active if active is not None else every

    def quiet_wait(self) -> timedelta | None:
        """Live runs: how long after this key's last event (on the clock) ``on_quiet`` has work:
        its provisional rules may take the buffer as complete after their sources' learned delay,
        its fold after their allowed lateness. None: nothing buffered."""
        st = self.state
        if not st.buffer or self.lateness is None:
            return None
        bound, learned = self._waits()
        if self._provisional and learned < bound and len(st.buffer) <= REBUILD_CAP and (
                st.fast is None or st.fast < st.newest):
            return learned
        return bound

    def on_quiet(self, now: datetime, since: timedelta) -> list[Alert]:
        """The key has had no event for ``since`` on the clock: past its sources' allowed
        lateness everything is folded; past their learned delay the provisional rules fold it."""
        st = self.state
        if not st.buffer or self.lateness is None:
            return []
        self._now = now
        watermark = self._watermark()
        if since >= self._waits()[0] or not self._provisional or watermark is None:
            return self.flush()
        return self._tell(self._provisional_to(st.newest, watermark, False), [])

    def _waits(self) -> tuple[timedelta, timedelta]:
        """The largest allowed lateness and learned delay of the key's sources (live runs)."""
        assert self.lateness is not None
        recs = self.state.sources.values()
        return (max((r[1] for r in recs), default=self.lateness),
                max((r[2] for r in recs), default=self.lateness))

    def flush(self) -> list[Alert]:
        """End of input: fold everything and close every open burst."""
        alerts = self._tell([], self._advance(None))
        st = self.state
        st.ahead, st.ahead_newest, st.fast = {}, None, None  # the fold has caught up with everything
        return alerts

    def fold_before(self, watermark: datetime) -> list[Alert]:
        """Replays: fold the buffered events older than ``watermark``, which no event still to
        come is older than (``logwarden.replay``), in the order and with the alerts the end of
        input would give them. The watermark itself closes no burst: the next event's gap or the
        end does, as when the whole replay folds at its end."""
        return self._tell([], self._advance(watermark, before=True))

    def _advance(self, watermark: datetime | None, before: bool = False) -> list[Alert]:
        """Fold the buffer up to ``watermark`` (None: all of it) and close what it has passed;
        ``before``: only what is older than it, and close nothing more."""
        st = self.state
        alerts: list[Alert] = []
        buffer, states, entity = st.buffer, st.rule_states, self.entity
        while buffer and (watermark is None or buffer[0][0] < watermark
                          or (not before and buffer[0][0] == watermark)):
            ts, _, _, event = heapq.heappop(buffer)
            relevant = event.relevant
            for rule, rid in self._ids:
                rstate = states.get(rid)
                if relevant is not None and rid not in relevant:
                    # Not its event (the router asked): no fold, but a gap still closes its burst.
                    if rstate is not None and (closed := rule.close(rstate, entity, ts)) is not None:
                        alerts.append(closed)
                    continue
                if rstate is None:
                    rstate = states[rid] = rule.init()
                # A gap longer than the rule's window closes what was open before this event.
                closed = rule.close(rstate, entity, ts)
                if closed is not None:
                    alerts.append(closed)
                if (alert := self._fold(rule, rstate, event)) is not None:
                    alerts.append(alert)
        if before:
            return alerts
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

    def idle(self, replayed: datetime | None = None) -> bool:
        """Nothing buffered and no rule state a later event could need: the key can be freed.
        ``replayed``: a replay's watermark (``fold_before``), which live runs compute."""
        st = self.state
        watermark = self._watermark() if replayed is None else replayed
        if st.buffer or watermark is None:
            return not st.buffer and not st.rule_states
        return all(rule.idle(st.rule_states[rule.meta.id], watermark)
                   for rule in self.rules if rule.meta.id in st.rule_states)


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

"""The model in the stream, per principal: fold events into windows; as windows close, describe
each against the principal's baseline and learn it (``features.prequential``), score the ready
ones in one vectorized batch, and turn consecutive anomalous windows into one alert that is
updated. The baseline lives in the principal's state: recovered with it after a crash, and
owned by the one worker the principal is routed to."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from logwarden.alerts import Alert, make_alert_id
from logwarden.anomaly.features import (
    DEFAULT_SENSITIVE,
    DEFAULT_SERVICE_PATTERNS,
    Baseline,
    Gate,
    Row,
    WindowStats,
    kind_of,
    prequential,
    window_start,
)
from logwarden.anomaly.model import RULE_ID, Anomaly, AnomalyModel
from logwarden.event import Event

TAGS = ["pci-dss-4.0:10.4.1", "nist-800-53:SI-4", "nist-800-53:AC-2(12)", "attack:T1078"]
DESCRIPTION = "Unusual activity for this principal"


@dataclass
class OpenAlert:
    alert_id: str
    start: datetime
    end: datetime
    events: int
    score: float
    explanation: list[str]
    evidence: list[str]
    revision: int = 0


@dataclass
class PrincipalState:
    """Plain values: open windows, the newest event time, the alert in progress."""

    principal: str
    windows: dict[datetime, WindowStats] = field(default_factory=dict)
    newest: datetime | None = None
    open_alert: OpenAlert | None = None
    baseline: Baseline | None = None  # what is usual for it, learned as its windows close


Progress = Callable[[str, Baseline, datetime | None], None]


# A replay scores a principal's windows the watermark has closed once they span this much.
REPLAY_CLOSE = timedelta(days=1)
SCORED_AT_ONCE = 10_000  # windows a scoring call takes at most (whole principals: their order matters)


class PrincipalScorer:
    def __init__(self, model: AnomalyModel, width: timedelta, lateness: timedelta | None,
                 sensitive: tuple[str, ...] = DEFAULT_SENSITIVE, gate: Gate | None = None,
                 service_patterns: Iterable[str] = DEFAULT_SERVICE_PATTERNS,
                 on_progress: Progress | None = None, on_rows: Callable[[list[Row]], None] | None = None) -> None:
        self.model, self.width, self.lateness, self.sensitive = model, width, lateness, sensitive
        self.gate = gate or model.gate_
        self.service_patterns = tuple(service_patterns)
        self.on_progress = on_progress
        self.on_rows = on_rows  # told every feature row before it is scored (an analyst's export, a test)

    def add(self, st: PrincipalState, events: list[Event]) -> list[Alert]:
        w: WindowStats | None = None
        for e in events:
            ts = e.timestamp
            assert ts is not None
            if w is None or not w.start <= ts < w.start + self.width:  # mostly the previous event's window
                start = window_start(ts, self.width)
                w = st.windows.get(start)
                if w is None:
                    w = st.windows[start] = WindowStats(st.principal, start)
            w.add(e, self.sensitive)
            st.newest = ts if st.newest is None or ts > st.newest else st.newest
        if self.lateness is None or st.newest is None:
            return []  # replay: windows close at the end of input
        return self.close(st, st.newest - self.lateness)

    def close_before(self, st: PrincipalState, watermark: datetime, wait: bool = True) -> list[Alert]:
        """Replays: score the windows ending by ``watermark``, which no event still to come is
        older than (``logwarden.replay``); ``wait``: only once they span ``REPLAY_CLOSE`` (a
        scoring call costs about as much for one window as for a day of them)."""
        # the first window kept stands for the oldest (one opened later, by an event behind it,
        # waits with it)
        if not st.windows or (wait and watermark - next(iter(st.windows)) < REPLAY_CLOSE + self.width):
            return []
        return self.close(st, watermark)

    def close(self, st: PrincipalState, watermark: datetime | None) -> list[Alert]:
        """Score the windows the watermark has closed (None: all), oldest first."""
        return self.close_many([st], watermark)[0]

    def close_many(self, states: list[PrincipalState], watermark: datetime | None) -> list[list[Alert]]:
        """``close`` for many principals at once: one vectorized scoring call for all their windows
        (scoring a few rows costs nearly as much as scoring thousands), a group of principals of
        at most ``SCORED_AT_ONCE`` windows at a time (a replay's end holds every window of every
        principal: their rows all at once would double the flow's peak memory)."""
        due = [[st.windows.pop(s) for s in sorted(s for s in st.windows
                                                  if watermark is None or s + self.width <= watermark)]
               for st in states]
        out: list[list[Alert]] = []
        for group in _groups([len(windows) for windows in due], SCORED_AT_ONCE):
            out += self._score(states[group], due[group])
            due[group] = [[] for _ in states[group]]  # scored: let their windows go
        return out

    def _score(self, states: list[PrincipalState], due: list[list[WindowStats]]) -> list[list[Alert]]:
        """Rows of each principal's due windows against its baseline, scored in one call."""
        rows: list[Row] = []
        for st, windows in zip(states, due, strict=True):
            if st.baseline is None:
                st.baseline = self.model.baseline_for(st.principal)
            rows += prequential(windows, {st.principal: st.baseline}, self.gate)
            if self.on_progress is not None and windows:
                self.on_progress(st.principal, st.baseline, windows[-1].start)
        if self.on_rows is not None and rows:
            self.on_rows(rows)
        flagged = {(a.window.principal, a.window.start): a for a in self.model.anomalies(rows)}
        return [self._merge(st, windows, flagged) for st, windows in zip(states, due, strict=True)]

    def _merge(self, st: PrincipalState, windows: list[WindowStats],
               flagged: dict[tuple[str, datetime], Anomaly]) -> list[Alert]:
        """Consecutive anomalous windows make one alert, updated as it grows."""
        alerts: list[Alert] = []
        for w in windows:
            hit = flagged.get((w.principal, w.start))
            cur = st.open_alert
            if hit is None:
                if cur is not None and w.start >= cur.end:
                    st.open_alert = None  # a normal window ends the anomalous stretch
                continue
            if cur is not None and w.start <= cur.end:  # consecutive: the same alert, updated
                cur.end, cur.events = w.start + self.width, cur.events + w.events
                if hit.score > cur.score:
                    cur.score, cur.explanation = hit.score, hit.explanation
                cur.revision += 1
            else:
                cur = st.open_alert = OpenAlert(make_alert_id(RULE_ID, st.principal, w.evidence[0] if w.evidence else
                                                              w.start.isoformat()), w.start, w.start + self.width,
                                                w.events, hit.score, hit.explanation, list(w.evidence))
            alerts.append(self._alert(st.principal, cur))
        return alerts

    def _alert(self, principal: str, a: OpenAlert) -> Alert:
        because = "; ".join(a.explanation) or "an unusual combination of its window's features"
        who = "service account" if kind_of(principal, self.service_patterns) == "service" else "user"
        return Alert(a.alert_id, RULE_ID, "high", principal, a.start, a.end, a.events,
                     f"{DESCRIPTION} ({who} {principal}): {because}", list(a.evidence), list(TAGS), a.revision,
                     DESCRIPTION, score=a.score, explanation=because)


def _groups(sizes: list[int], limit: int) -> list[slice]:
    """Consecutive slices of ``sizes`` adding up to at most ``limit`` (a bigger one alone); at
    least one slice, even of nothing."""
    out, start, total = [], 0, 0
    for end, size in enumerate(sizes):
        if total and total + size > limit:
            out.append(slice(start, end))
            start, total = end, 0
        total += size
    return [*out, slice(start, len(sizes))]


class ModelProgress:
    """How far the model's warm-up is, for the scorecard, metrics and ``logwarden status``:
    told by every worker's scorer as windows close (thread-safe)."""

    def __init__(self, gate: Gate, portable: bool) -> None:
        self.gate, self.portable = gate, portable
        self._lock = threading.Lock()
        self._ready: dict[str, bool] = {}
        self.first: datetime | None = None
        self.newest: datetime | None = None

    def update(self, principal: str, baseline: Baseline, newest: datetime | None) -> None:
        with self._lock:
            if baseline.first is not None and (self.first is None or baseline.first < self.first):
                self.first = baseline.first
            if newest is not None and (self.newest is None or newest > self.newest):
                self.newest = newest
            self._ready[principal] = newest is not None and self.gate.ready(baseline, newest)

    def counts(self) -> tuple[int, int]:
        """(principals scored, principals still learning)."""
        with self._lock:
            ready = sum(self._ready.values())
            return ready, len(self._ready) - ready

    def warmup_left(self) -> timedelta | None:
        """Event time left before the organisation's warm-up ends (None: nothing seen yet)."""
        if self.first is None or self.newest is None:
            return None
        return max(self.first + self.gate.warmup - self.newest, timedelta(0))

    def summary(self) -> str:
        scored, learning = self.counts()
        left = self.warmup_left()
        if left is None:
            return "model: no identified principal seen yet (anonymous clients are left to the rules)"
        origin = "a portable model (no baselines of this organisation)" if self.portable else \
            "a model with this organisation's baselines"
        if left > timedelta(0):
            done = self.gate.warmup - left
            hours = self.gate.warmup.total_seconds() / 3600
            state = (f"warming up: {done.total_seconds() / 3600:.1f}h of {hours:.0f}h of event time learned "
                     f"({done / self.gate.warmup:.0%}), no model alert before it ends")
        else:
            state = "warm-up done"
        return (f"model: {origin}; {state}; {scored} principal(s) scored, {learning} still learning "
                f"(a principal is scored after {self.gate.min_windows} windows over "
                f"{self.gate.warmup.total_seconds() / 3600:.0f}h)")

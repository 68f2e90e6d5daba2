"""The model in the stream, per principal: fold events into windows, score closed windows in one
vectorized batch, and turn consecutive anomalous windows into one alert that is updated."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from logwarden.alerts import Alert, make_alert_id
from logwarden.anomaly.features import DEFAULT_SENSITIVE, WindowStats, window_start
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


class PrincipalScorer:
    def __init__(self, model: AnomalyModel, width: timedelta, lateness: timedelta | None,
                 sensitive: tuple[str, ...] = DEFAULT_SENSITIVE) -> None:
        self.model, self.width, self.lateness, self.sensitive = model, width, lateness, sensitive

    def add(self, st: PrincipalState, events: list[Event]) -> list[Alert]:
        for e in events:
            ts = e.timestamp
            assert ts is not None
            start = window_start(ts, self.width)
            w = st.windows.get(start)
            if w is None:
                w = st.windows[start] = WindowStats(st.principal, start)
            w.add(e, self.sensitive)
            st.newest = ts if st.newest is None or ts > st.newest else st.newest
        if self.lateness is None or st.newest is None:
            return []  # replay: windows close at the end of input
        return self.close(st, st.newest - self.lateness)

    def close(self, st: PrincipalState, watermark: datetime | None) -> list[Alert]:
        """Score the windows the watermark has closed (None: all), oldest first."""
        return self.close_many([st], watermark)[0]

    def close_many(self, states: list[PrincipalState], watermark: datetime | None) -> list[list[Alert]]:
        """``close`` for many principals at once: one vectorized scoring call for all their windows
        (scoring a few rows costs nearly as much as scoring thousands)."""
        due = [[st.windows.pop(s) for s in sorted(s for s in st.windows
                                                  if watermark is None or s + self.width <= watermark)]
               for st in states]
        everything = [w for windows in due for w in windows]
        flagged = {(a.window.principal, a.window.start): a for a in self.model.anomalies(everything)}
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
        because = "; ".join(a.explanation)
        return Alert(a.alert_id, RULE_ID, "high", principal, a.start, a.end, a.events,
                     f"{DESCRIPTION}: {because}", list(a.evidence), list(TAGS), a.revision, DESCRIPTION,
                     score=a.score, explanation=because)

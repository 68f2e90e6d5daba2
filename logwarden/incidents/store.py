"""The incident store: alerts in, incidents out, atomically and idempotently.

- An incident is identified by its fingerprint (rule id + entity). Alerts with the same
  fingerprint while it is open or acknowledged update it (count, last seen, evidence).
- Idempotent: an incident remembers the (alert_id, revision) it has applied; the same alert
  delivered twice (a retry, a replay after a restart, two workers) changes it once.
- Every change that needs a notification adds the incident to the outbox *in the same
  transaction*: recorded before sent, so a crash loses nothing.
- States open -> acknowledged -> resolved; auto-resolve after a quiet period; re-notify a
  still-firing open incident after ``repeat_interval``; silences; history of who did what.
- A noise budget: each detector may open so many new incidents per UTC day of its alerts' event
  time. Past it, that day's alerts that would open a new incident fold into one over-budget
  incident of the detector and day (fingerprint ``rule|over-budget:YYYY-MM-DD``; reopened if it
  was resolved), which counts them and their top entities. Updates of open incidents are never
  held back; the over-budget incident does not count against the budget. The day's counter
  lives in the backend, so workers and restarts count together; a replayed alert is skipped by
  its alert -> incident key before it could be counted again.
"""

from __future__ import annotations

import secrets as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from logwarden.alerts import Alert
from logwarden.errors import LogwardenError
from logwarden.incidents.backend import Backend, Tx
from logwarden.incidents.model import (
    MAX_EVIDENCE,
    Incident,
    Silence,
    fingerprint_of,
    incident_id,
    over_budget_entity,
    pending_id,
    tally,
)
from logwarden.timeutil import isoformat

SYSTEM = "logwarden"


@dataclass(frozen=True)
class NoiseBudget:
    """New incidents a detector may open per UTC day; None: no limit. Without configuration
    nothing is limited: the settings give rules and the model their budgets (``build_store``)."""

    default: int | None = None  # a detector without a budget of its own
    rules: Mapping[str, int | None] = field(default_factory=dict)  # rule id (or the model's) -> budget
    memory: timedelta = timedelta(days=3)  # how long a day's counter is kept (reruns within it count none)

    def of(self, rule_id: str) -> int | None:
        return self.rules[rule_id] if rule_id in self.rules else self.default


@dataclass(frozen=True)
class IncidentPolicy:
    resolve_after: timedelta = timedelta(hours=1)  # quiet period before auto-resolve
    repeat_interval: timedelta = timedelta(hours=4)  # re-notify a still-firing open incident
    retention: timedelta = timedelta(days=7)  # resolved incidents' keys expire after this
    alert_memory: timedelta = timedelta(days=30)  # how long an alert id stays tied to its incident
    budget: NoiseBudget = field(default_factory=NoiseBudget)


@dataclass(frozen=True)
class OverBudget:
    """One detector's day past its budget: how many alerts were folded, and into which incident."""

    rule_id: str
    day: str  # YYYY-MM-DD, UTC, of the alerts' event time
    budget: int
    folded: int
    incident_id: str


class IncidentError(LogwardenError):
    pass


class IncidentStore:
    def __init__(self, backend: Backend, policy: IncidentPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.policy = policy or IncidentPolicy()
        self.clock = clock
        p = backend.prefix
        self._inc, self._fp = f"{p}inc:", f"{p}fp:"
        self._index, self._outbox, self._silences = f"{p}incidents", f"{p}outbox", f"{p}silences"
        self._alert, self._budget = f"{p}alert:", f"{p}budget:"

    # -- alerts in -------------------------------------------------------------------------
    def apply(self, alerts: list[Alert]) -> list[Incident]:
        """Apply a batch of alerts in one transaction; the incidents that changed."""
        if not alerts:
            return []
        ordered = sorted(alerts, key=lambda a: (a.start, a.alert_id, a.revision))
        limits = {a.rule_id: self.policy.budget.of(a.rule_id) for a in ordered}
        # (rule, day) pairs under a budget: their counters and over-budget incidents are read
        # with everything else, in the same round trips.
        pairs = sorted({(a.rule_id, day_of(a.start)) for a in ordered if limits[a.rule_id] is not None})
        over_fps = {pair: fingerprint_of(pair[0], over_budget_entity(pair[1])) for pair in pairs}
        fps = sorted({fingerprint_of(a.rule_id, a.entity) for a in ordered} | set(over_fps.values()))
        aids = sorted({a.alert_id for a in ordered})
        counters = [f"{self._budget}{day}:{rule}" for rule, day in pairs]

        def tx_fn(tx: Tx) -> list[Incident]:
            now = self.clock()
            silences = self._load_silences(tx)
            got = tx.get([self._alert + a for a in aids] + counters)
            owner = dict(zip(aids, got[:len(aids)], strict=True))
            opened = {pair: int(n or 0) for pair, n in zip(pairs, got[len(aids):], strict=True)}
            ids = dict(zip(fps, tx.get([self._fp + fp for fp in fps]), strict=True))
            known = [i for i in ids.values() if i]
            docs = dict(zip(known, tx.get([self._inc + i for i in known]), strict=True))
            current = {fp: Incident.from_json(docs[i]) for fp, i in ids.items() if i and docs.get(i)}
            changed: dict[str, Incident] = {}
            created: set[str] = set()  # new (or reopened): their fingerprint and listing entries are written
            counted: set[tuple[str, str]] = set()
            folded: dict[str, int] = {}  # over-budget incident id -> alerts folded by this batch
            memory_ms = int(self.policy.alert_memory.total_seconds() * 1000)
            for alert in ordered:
                fp = fingerprint_of(alert.rule_id, alert.entity)
                inc = current.get(fp)
                if inc is not None and _applied(inc, alert):
                    continue
                known_owner = owner.get(alert.alert_id)
                if known_owner not in (None, inc.id if inc else None):
                    continue  # a replayed alert of an earlier (resolved) incident, or a folded one
                if alert.resolved:  # its detector saw the condition end: the incident resolves itself
                    if inc is not None and inc.state != "resolved" and known_owner == inc.id:
                        _resolve_itself(inc, alert, now)
                        changed[inc.id] = inc
                        created.add(inc.id)  # its keys take the retention
                    continue
                if inc is None or inc.state == "resolved":
                    limit, pair = limits[alert.rule_id], (alert.rule_id, day_of(alert.start))
                    if limit is not None and opened[pair] >= limit:
                        inc = current.get(over_fps[pair])
                        if inc is None:
                            inc = _open_over_budget(over_fps[pair], alert, pair[1], limit, now)
                            created.add(inc.id)
                        elif inc.state == "resolved":  # one a detector's day: the same one, reopened
                            _reopen(inc, now)
                            created.add(inc.id)  # its keys lose the retention again
                        _fold(inc, alert, now, self.policy)
                        folded[inc.id] = folded.get(inc.id, 0) + 1
                    else:
                        if limit is not None:
                            opened[pair] += 1
                            counted.add(pair)
                        inc = _open(fp, alert, now)
                        created.add(inc.id)
                else:
                    _update(inc, alert, now, self.policy)
                silence = next((s for s in silences if s.matches(inc.rule_id, inc.entity, now)), None)
                inc.silenced_by = silence.id if silence else None
                current[inc.fingerprint] = changed[inc.id] = inc
                if known_owner is None:
                    owner[alert.alert_id] = inc.id
                    tx.set(self._alert + alert.alert_id, inc.id, memory_ms)
            budget_ms = int(self.policy.budget.memory.total_seconds() * 1000)
            for rule, day in sorted(counted):
                tx.set(f"{self._budget}{day}:{rule}", str(opened[rule, day]), budget_ms)
            for inc in changed.values():
                if inc.over_budget is not None:
                    inc.over_budget["added"] = folded.get(inc.id, 0)
                self._write(tx, inc, now, notify=inc.silenced_by is None, index=inc.id in created)
            return list(changed.values())

        return self.backend.atomic(tx_fn)

    # -- commands --------------------------------------------------------------------------
    def get(self, iid: str) -> Incident | None:
        text = self.backend.atomic(lambda tx: tx.get([self._inc + iid])[0])
        return Incident.from_json(text) if text else None

    def list(self, state: str | None = None, rule: str | None = None, limit: int | None = 1000) -> list[Incident]:
        """The newest ``limit`` incidents (None: all), oldest first."""
        out = [i for i in self._all() if (state is None or i.state == state) and (rule is None or i.rule_id == rule)]
        return out if limit is None else out[-limit:]

    def _all(self) -> list[Incident]:
        """Every stored incident, oldest first."""

        def tx_fn(tx: Tx) -> list[Incident]:
            ids = tx.zrange(self._index)
            docs = tx.get([self._inc + i for i in ids]) if ids else []
            return [Incident.from_json(d) for d in docs if d]

        return self.backend.atomic(tx_fn)

    def budget_report(self) -> list[OverBudget]:
        """Per detector and day past its budget: alerts folded and the over-budget incident, by
        day then rule (from the stored over-budget incidents: resolved ones expire with them)."""
        days: dict[tuple[str, str], OverBudget] = {}
        for inc in self._all():  # oldest first: had a day two (the first expired), the latest is named
            ob = inc.over_budget
            if ob is None:
                continue
            key = (inc.rule_id, ob["day"])
            before = days[key].folded if key in days else 0
            days[key] = OverBudget(inc.rule_id, ob["day"], ob["budget"], before + inc.count, inc.id)
        return [days[k] for k in sorted(days, key=lambda k: (k[1], k[0]))]

    def ack(self, iid: str, by: str, note: str = "") -> Incident:
        return self._transition(iid, "acknowledged", by, note)

    def resolve(self, iid: str, by: str, note: str = "") -> Incident:
        return self._transition(iid, "resolved", by, note)

    def _transition(self, iid: str, state: str, by: str, note: str) -> Incident:
        def tx_fn(tx: Tx) -> Incident:
            text = tx.get([self._inc + iid])[0]
            if text is None:
                raise IncidentError(f"no incident {iid!r} (resolved ones expire after the retention)")
            inc = Incident.from_json(text)
            if inc.state == state:
                return inc
            if inc.state == "resolved":
                raise IncidentError(f"incident {iid} is already resolved")
            now = self.clock()
            inc.state = state
            inc.version += 1  # the posted message must show the new state
            inc.record(now, by, state, note)
            inc.pending.append({"kind": state, "by": by, "note": note, "id": pending_id(inc, now)})
            self._write(tx, inc, now, notify=True, index=True)
            return inc

        return self.backend.atomic(tx_fn)

    def auto_resolve(self) -> list[Incident]:
        """Resolve incidents that received no alert for ``resolve_after``."""
        cutoff = self.clock() - self.policy.resolve_after.total_seconds()
        stale = [i.id for i in self.list() if i.state != "resolved" and i.updated_at < cutoff]
        done = []
        for iid in stale:
            try:
                done.append(self._transition(iid, "resolved", SYSTEM, "no alerts for "
                                             f"{self.policy.resolve_after}"))
            except IncidentError:
                continue
        return done

    # -- silences --------------------------------------------------------------------------
    def add_silence(self, matcher: str, value: str, duration: timedelta, author: str, reason: str) -> Silence:
        if matcher not in ("rule", "entity", "match"):
            raise IncidentError(f"a silence matches by rule, entity or match, not {matcher!r}")
        now = self.clock()
        silence = Silence("SIL-" + _random.token_hex(4), matcher, value, author, reason, now,
                          now + duration.total_seconds())

        def tx_fn(tx: Tx) -> Silence:
            kept = [s for s in self._load_silences(tx) if s.expires_at > now]
            self._save_silences(tx, [*kept, silence])
            return silence

        return self.backend.atomic(tx_fn)

    def silences(self) -> list[Silence]:
        now = self.clock()
        return [s for s in self.backend.atomic(self._load_silences) if s.expires_at > now]

    def remove_silence(self, sid: str) -> None:
        def tx_fn(tx: Tx) -> None:
            current = self._load_silences(tx)
            if not any(s.id == sid for s in current):
                raise IncidentError(f"no silence {sid!r}")
            self._save_silences(tx, [s for s in current if s.id != sid])

        self.backend.atomic(tx_fn)

    # -- the outbox ------------------------------------------------------------------------
    def outbox(self, limit: int = 500) -> list[str]:
        return self.backend.atomic(lambda tx: tx.zrange(self._outbox, limit))

    def mark_notified(self, iid: str, version: int, message: dict | None, sent_pending: int,
                      notified: bool) -> None:
        """After a delivery: remember where the message lives and what was sent. The incident
        leaves the outbox only if nothing changed while it was being sent."""

        def tx_fn(tx: Tx) -> None:
            text = tx.get([self._inc + iid])[0]
            if text is None:
                tx.zrem(self._outbox, iid)
                return
            inc = Incident.from_json(text)
            if message is not None:
                inc.message, inc.sending = message, None
            del inc.pending[:sent_pending]
            if inc.message is not None and not inc.pending:
                inc.sending = None  # every reply is out
            inc.notified_version = max(inc.notified_version, version)
            if notified:
                inc.last_notified_at = self.clock()
            self._write(tx, inc, self.clock(), notify=False, bump=False)
            if inc.version <= inc.notified_version and not inc.pending:
                tx.zrem(self._outbox, iid)

        self.backend.atomic(tx_fn)

    def note_sending(self, iids: list[str], channel: str | None, since: float) -> None:
        """Before a first post or a thread's replies: record that it is under way (see
        ``Incident.sending``)."""

        def tx_fn(tx: Tx) -> None:
            for text in tx.get([self._inc + i for i in iids]):
                if text is not None:
                    inc = Incident.from_json(text)
                    inc.sending = {"since": since, "channel": channel}
                    self._write(tx, inc, self.clock(), notify=False, bump=False)

        self.backend.atomic(tx_fn)

    def note_failure(self, iid: str, error: str) -> None:
        """A delivery that cannot succeed (not retryable): record it and stop retrying."""

        def tx_fn(tx: Tx) -> None:
            text = tx.get([self._inc + iid])[0]
            tx.zrem(self._outbox, iid)
            if text is None:
                return
            inc = Incident.from_json(text)
            inc.record(self.clock(), SYSTEM, "notification_failed", error)
            inc.notified_version, inc.pending = inc.version, []
            self._write(tx, inc, self.clock(), notify=False, bump=False)

        self.backend.atomic(tx_fn)

    # -- internals -------------------------------------------------------------------------
    def _write(self, tx: Tx, inc: Incident, now: float, notify: bool, bump: bool = True,
               index: bool = False) -> None:
        """Store the incident; ``index`` also (re)writes its fingerprint and listing entries,
        needed when it is created or changes state (a resolved one's keys get the retention)."""
        ttl = int(self.policy.retention.total_seconds() * 1000) if inc.state == "resolved" else None
        if bump:
            inc.updated_at = now
        tx.set(self._inc + inc.id, inc.to_json(), ttl)
        if index:
            tx.set(self._fp + inc.fingerprint, inc.id, ttl)
            tx.zadd(self._index, inc.id, inc.created_at)
        if notify:
            tx.zadd(self._outbox, inc.id, now)

    def _load_silences(self, tx: Tx) -> list[Silence]:
        text = tx.get([self._silences])[0]
        return [Silence(**d) for d in orjson.loads(text)] if text else []

    def _save_silences(self, tx: Tx, silences: list[Silence]) -> None:
        tx.set(self._silences, orjson.dumps([s.__dict__ for s in silences]).decode())


def _applied(inc: Incident, alert: Alert) -> bool:
    seen = inc.alerts.get(alert.alert_id)
    return seen is not None and seen[0] >= alert.revision


def _open(fp: str, alert: Alert, now: float) -> Incident:
    inc = Incident(
        id=incident_id(fp, alert.alert_id), fingerprint=fp, rule_id=alert.rule_id,
        severity=alert.severity, entity=alert.entity, description=alert.description,
        summary=alert.summary, tags=list(alert.tags), first_seen=isoformat(alert.start),
        last_seen=isoformat(alert.end), count=alert.count, created_at=now, updated_at=now,
        evidence=list(alert.evidence[:MAX_EVIDENCE]), alerts={alert.alert_id: [alert.revision, alert.count]},
        explanation=getattr(alert, "explanation", None))
    inc.record(now, SYSTEM, "opened", alert.summary)
    return inc


def _update(inc: Incident, alert: Alert, now: float, policy: IncidentPolicy) -> None:
    inc.alerts[alert.alert_id] = [alert.revision, alert.count]
    inc.count = sum(c for _, c in inc.alerts.values())
    inc.summary = alert.summary
    _extend(inc, alert)
    _renotify_if_due(inc, now, policy)


def _resolve_itself(inc: Incident, alert: Alert, now: float) -> None:
    inc.alerts[alert.alert_id] = [alert.revision, alert.count]
    inc.count = sum(c for _, c in inc.alerts.values())
    inc.last_seen = max(inc.last_seen, isoformat(alert.end))
    inc.state = "resolved"
    inc.summary = alert.summary
    inc.version += 1  # the posted message must show the new state
    inc.record(now, SYSTEM, "resolved", alert.summary)
    inc.pending.append({"kind": "resolved", "by": SYSTEM, "note": alert.summary, "id": pending_id(inc, now)})


def day_of(ts: datetime) -> str:
    """The UTC calendar day of an event time (YYYY-MM-DD); a naive time is taken as UTC."""
    return (ts.astimezone(UTC) if ts.tzinfo is not None else ts).date().isoformat()


def _open_over_budget(fp: str, alert: Alert, day: str, budget: int, now: float) -> Incident:
    """A detector's over-budget incident of a day, empty: ``_fold`` adds the first alert."""
    inc = Incident(
        id=incident_id(fp, alert.alert_id), fingerprint=fp, rule_id=alert.rule_id, severity=alert.severity,
        entity=over_budget_entity(day), description=f"Over its noise budget: {alert.description or alert.rule_id}",
        summary="", tags=list(alert.tags), first_seen=isoformat(alert.start), last_seen=isoformat(alert.end),
        count=0, created_at=now, updated_at=now, version=0,
        over_budget={"day": day, "budget": budget, "entities": {}, "added": 0})
    inc.record(now, SYSTEM, "opened", f"{alert.rule_id} opened its {budget} new incidents of {day}")
    return inc


def _reopen(inc: Incident, now: float) -> None:
    inc.state = "open"
    note = "more alerts past the budget"
    inc.record(now, SYSTEM, "reopened", note)
    inc.pending.append({"kind": "reopened", "by": SYSTEM, "note": note, "id": pending_id(inc, now)})


def _fold(inc: Incident, alert: Alert, now: float, policy: IncidentPolicy) -> None:
    """One more alert of the detector's day past its budget: counted, not an incident of its own.
    (Its later revisions are not: the alert -> incident key skips them; the count is of alerts.)"""
    assert inc.over_budget is not None
    tally(inc.over_budget["entities"], alert.entity)
    inc.count += 1
    inc.summary = inc.over_budget_summary()
    _extend(inc, alert)
    _renotify_if_due(inc, now, policy)


def _extend(inc: Incident, alert: Alert) -> None:
    inc.first_seen = min(inc.first_seen, isoformat(alert.start))
    inc.last_seen = max(inc.last_seen, isoformat(alert.end))
    for ref in alert.evidence:
        if len(inc.evidence) >= MAX_EVIDENCE:
            break
        if ref not in inc.evidence:
            inc.evidence.append(ref)
    inc.version += 1


def _renotify_if_due(inc: Incident, now: float, policy: IncidentPolicy) -> None:
    if (inc.state == "open" and inc.last_notified_at is not None
            and now - inc.last_notified_at >= policy.repeat_interval.total_seconds()
            and not any(p["kind"] == "renotify" for p in inc.pending)):
        inc.pending.append({"kind": "renotify", "by": SYSTEM, "note": "still firing", "id": pending_id(inc, now)})

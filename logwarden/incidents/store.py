"""The incident store: alerts in, incidents out, atomically and idempotently.

- An incident is identified by its fingerprint (rule id + entity). Alerts with the same
  fingerprint while it is open or acknowledged update it (count, last seen, evidence).
- Idempotent: an incident remembers the (alert_id, revision) it has applied; the same alert
  delivered twice (a retry, a replay after a restart, two workers) changes it once.
- Every change that needs a notification adds the incident to the outbox *in the same
  transaction*: recorded before sent, so a crash loses nothing.
- States open -> acknowledged -> resolved; auto-resolve after a quiet period; re-notify a
  still-firing open incident after ``repeat_interval``; silences; history of who did what.
"""

from __future__ import annotations

import secrets as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson

from logwarden.alerts import Alert
from logwarden.errors import LogwardenError
from logwarden.incidents.backend import Backend, Tx
from logwarden.incidents.model import MAX_EVIDENCE, Incident, Silence, fingerprint_of, incident_id, pending_id
from logwarden.timeutil import isoformat

SYSTEM = "logwarden"


@dataclass(frozen=True)
class IncidentPolicy:
    resolve_after: timedelta = timedelta(hours=1)  # quiet period before auto-resolve
    repeat_interval: timedelta = timedelta(hours=4)  # re-notify a still-firing open incident
    retention: timedelta = timedelta(days=7)  # resolved incidents' keys expire after this
    alert_memory: timedelta = timedelta(days=30)  # how long an alert id stays tied to its incident


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
        self._alert = f"{p}alert:"

    # -- alerts in -------------------------------------------------------------------------
    def apply(self, alerts: list[Alert]) -> list[Incident]:
        """Apply a batch of alerts in one transaction; the incidents that changed."""
        if not alerts:
            return []
        ordered = sorted(alerts, key=lambda a: (a.start, a.alert_id, a.revision))
        fps = sorted({fingerprint_of(a.rule_id, a.entity) for a in ordered})
        aids = sorted({a.alert_id for a in ordered})

        def tx_fn(tx: Tx) -> list[Incident]:
            now = self.clock()
            silences = self._load_silences(tx)
            owner = dict(zip(aids, tx.get([self._alert + a for a in aids]), strict=True))
            ids = dict(zip(fps, tx.get([self._fp + fp for fp in fps]), strict=True))
            known = [i for i in ids.values() if i]
            docs = dict(zip(known, tx.get([self._inc + i for i in known]), strict=True))
            current = {fp: Incident.from_json(docs[i]) for fp, i in ids.items() if i and docs.get(i)}
            changed: dict[str, Incident] = {}
            created: set[str] = set()
            memory_ms = int(self.policy.alert_memory.total_seconds() * 1000)
            for alert in ordered:
                fp = fingerprint_of(alert.rule_id, alert.entity)
                inc = current.get(fp)
                if inc is not None and _applied(inc, alert):
                    continue
                known_owner = owner.get(alert.alert_id)
                if known_owner not in (None, inc.id if inc else None):
                    continue  # a replayed alert of an earlier (resolved) incident
                if inc is None or inc.state == "resolved":
                    inc = _open(fp, alert, now)
                    created.add(inc.id)
                else:
                    _update(inc, alert, now, self.policy)
                silence = next((s for s in silences if s.matches(alert.rule_id, alert.entity, now)), None)
                inc.silenced_by = silence.id if silence else None
                current[fp] = changed[inc.id] = inc
                if known_owner is None:
                    owner[alert.alert_id] = inc.id
                    tx.set(self._alert + alert.alert_id, inc.id, memory_ms)
            for inc in changed.values():
                self._write(tx, inc, now, notify=inc.silenced_by is None, index=inc.id in created)
            return list(changed.values())

        return self.backend.atomic(tx_fn)

    # -- commands --------------------------------------------------------------------------
    def get(self, iid: str) -> Incident | None:
        text = self.backend.atomic(lambda tx: tx.get([self._inc + iid])[0])
        return Incident.from_json(text) if text else None

    def list(self, state: str | None = None, rule: str | None = None, limit: int = 1000) -> list[Incident]:
        def tx_fn(tx: Tx) -> list[Incident]:
            ids = tx.zrange(self._index)
            docs = tx.get([self._inc + i for i in ids]) if ids else []
            return [Incident.from_json(d) for d in docs if d]

        out = [i for i in self.backend.atomic(tx_fn)
               if (state is None or i.state == state) and (rule is None or i.rule_id == rule)]
        return out[-limit:]

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
    inc.first_seen = min(inc.first_seen, isoformat(alert.start))
    inc.last_seen = max(inc.last_seen, isoformat(alert.end))
    inc.summary = alert.summary
    for ref in alert.evidence:
        if len(inc.evidence) >= MAX_EVIDENCE:
            break
        if ref not in inc.evidence:
            inc.evidence.append(ref)
    inc.version += 1
    if (inc.state == "open" and inc.last_notified_at is not None
            and now - inc.last_notified_at >= policy.repeat_interval.total_seconds()
            and not any(p["kind"] == "renotify" for p in inc.pending)):
        inc.pending.append({"kind": "renotify", "by": SYSTEM, "note": "still firing", "id": pending_id(inc, now)})

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

import fnmatch
import secrets as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logwarden.alerts import Alert
from logwarden.errors import LogwardenError
from logwarden.incidents.backend import Backend, Tx
from logwarden.incidents.model import (
    MAX_ENTITIES,
    MAX_EVIDENCE,
    Incident,
    Silence,
    fingerprint_of,
    group_key,
    incident_id,
    over_budget_entity,
    pending_id,
    severity_rank,
    tally,
)
from logwarden.timeutil import format_duration, isoformat, parse_iso

SYSTEM = "logwarden"
# Detectors of a log source's health (the standard's own alerts, a silent source) keep one incident
# per rule and source, whatever LOGWARDEN_INCIDENT_GROUP_BY: each is its own work item for the team
# that owns the source (rotate the leaked tokens; fix the deploy that dropped a field), not one
# attacker's story.
SOURCE_HEALTH = ("standard.*", "log-source-silent")
OUTBOX_RANK = 1e10  # outbox score offset per severity rank (more than any epoch time in seconds)


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
    # "entity": alerts about one entity (or entities an alert linked) within ``group_window`` of
    # the incident's alerts, in event time, join one incident whatever the rule; "rule,entity":
    # one incident per rule and entity, as long as it is open.
    group_by: str = "entity"
    group_window: timedelta = timedelta(hours=1)


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
        # In the order things happened: by each alert's latest event (a revision's end), so a
        # detector's resolution is applied after the alerts that fired before it, not before.
        ordered = sorted(alerts, key=lambda a: (a.end, a.alert_id, a.revision))
        limits = {a.rule_id: self.policy.budget.of(a.rule_id) for a in ordered}
        # (rule, day) pairs under a budget: their counters and over-budget incidents are read
        # with everything else, in the same round trips.
        pairs = sorted({(a.rule_id, day_of(a.start)) for a in ordered if limits[a.rule_id] is not None})
        over_fps = {pair: fingerprint_of(pair[0], over_budget_entity(pair[1])) for pair in pairs}
        keys = sorted({k for a in ordered for k in self._keys_of_alert(a)} | set(over_fps.values()))
        aids = sorted({a.alert_id for a in ordered})
        counters = [f"{self._budget}{day}:{rule}" for rule, day in pairs]

        def tx_fn(tx: Tx) -> list[Incident]:
            now = self.clock()
            silences = self._load_silences(tx)
            got = tx.get([self._alert + a for a in aids] + counters + [self._fp + k for k in keys])
            owner = dict(zip(aids, got[:len(aids)], strict=True))
            opened = {pair: int(n or 0) for pair, n in zip(pairs, got[len(aids):len(aids) + len(pairs)], strict=True)}
            ids: dict[str, str | None] = dict(zip(keys, got[len(aids) + len(pairs):], strict=True))
            wanted = sorted({i for i in ids.values() if i} | {i for i in owner.values() if i})
            incs = {i: Incident.from_json(d) for i, d in zip(wanted, tx.get([self._inc + i for i in wanted]),
                                                             strict=True) if d}
            changed: dict[str, Incident] = {}
            created: set[str] = set()  # new, reopened or resolved: their listing and index entries are written
            counted: set[tuple[str, str]] = set()
            folded: dict[str, int] = {}  # over-budget incident id -> alerts folded by this batch
            loud: set[str] = set()  # incidents an unsilenced alert changed
            quiet: dict[str, str] = {}  # incidents only silenced alerts changed -> the silence
            claimed: set[str] = set()  # index keys a live incident took over in this batch
            memory_ms = int(self.policy.alert_memory.total_seconds() * 1000)
            for alert in ordered:
                known_owner = owner.get(alert.alert_id)
                inc: Incident | None = None
                if known_owner is not None:  # a later revision of an alert already applied
                    inc = incs.get(known_owner)
                    if inc is None or _applied(inc, alert) or inc.over_budget is not None:
                        continue  # its incident expired, a replay, or a folded alert
                    if alert.resolved:  # its detector saw the condition end
                        if inc.state != "resolved" and _rule_ended(inc, alert, now):
                            created.add(inc.id)  # resolved: its keys take the retention
                        changed[inc.id] = inc
                        continue
                    if inc.state == "resolved":
                        inc = None  # a person resolved it while the alert went on: a new incident
                    else:
                        _join(inc, alert, now, self.policy)
                if alert.resolved:
                    continue
                if inc is None:
                    inc = self._live(alert, ids, incs)
                    if inc is not None:
                        _join(inc, alert, now, self.policy)
                    else:
                        limit, pair = limits[alert.rule_id], (alert.rule_id, day_of(alert.start))
                        if limit is not None and opened[pair] >= limit:
                            key = over_fps[pair]
                            inc = incs.get(ids.get(key) or "")
                            if inc is None:
                                inc = _open_over_budget(key, alert, pair[1], limit, now)
                                created.add(inc.id)
                            elif inc.state == "resolved":  # one a detector's day: the same one, reopened
                                _reopen(inc, now)
                                created.add(inc.id)  # its keys lose the retention again
                            ids[key], incs[inc.id] = inc.id, inc
                            _fold(inc, alert, now, self.policy)
                            folded[inc.id] = folded.get(inc.id, 0) + 1
                        else:
                            if limit is not None:
                                opened[pair] += 1
                                counted.add(pair)
                            key = self._key(alert.rule_id, alert.entity)
                            inc = _open(key, alert, now)
                            ids[key], incs[inc.id] = inc.id, inc
                            created.add(inc.id)
                if inc.fingerprint.startswith("entity|"):
                    for entity in (alert.entity, *alert.related):
                        self._link(inc, entity, alert, ids, incs, claimed, now)
                silence = next((s for s in silences if s.matches(alert.rule_id, alert.entity, now)), None)
                if silence is None:
                    loud.add(inc.id)
                else:
                    quiet.setdefault(inc.id, silence.id)
                changed[inc.id] = inc
                if known_owner != inc.id:
                    owner[alert.alert_id] = inc.id
                    tx.set(self._alert + alert.alert_id, inc.id, memory_ms)
            budget_ms = int(self.policy.budget.memory.total_seconds() * 1000)
            for rule, day in sorted(counted):
                tx.set(f"{self._budget}{day}:{rule}", str(opened[rule, day]), budget_ms)
            for inc in changed.values():
                if inc.id in loud:
                    inc.silenced_by = None
                elif inc.id in quiet:
                    inc.silenced_by = quiet[inc.id]
                if inc.over_budget is not None:
                    inc.over_budget["added"] = folded.get(inc.id, 0)
                self._write(tx, inc, now, notify=inc.silenced_by is None, index=inc.id in created, known=ids)
            for key in sorted(claimed):  # entities a live incident took over
                holder = incs[ids[key] or ""]
                tx.set(self._fp + key, holder.id, self._ttl_ms(holder))
            return list(changed.values())

        return self.backend.atomic(tx_fn)

    def _key(self, rule_id: str, entity: str) -> str:
        mode = "rule,entity" if any(fnmatch.fnmatchcase(rule_id, g) for g in SOURCE_HEALTH) else self.policy.group_by
        return group_key(mode, rule_id, entity)

    def _keys_of_alert(self, alert: Alert) -> list[str]:
        key = self._key(alert.rule_id, alert.entity)
        if not key.startswith("entity|"):
            return [key]
        return [self._key(alert.rule_id, e) for e in (alert.entity, *alert.related)]

    def _keys_of(self, inc: Incident) -> list[str]:
        """The index keys that find an incident: one per entity when grouped by entity."""
        if inc.fingerprint.startswith("entity|"):
            return [group_key("entity", inc.rule_id, e) for e in inc.all_entities()]
        return [inc.fingerprint]

    def _live(self, alert: Alert, ids: dict[str, str | None], incs: dict[str, Incident]) -> Incident | None:
        """The live incident this alert joins: its entity's, else one of its linked entities'."""
        for key in self._keys_of_alert(alert):
            inc = incs.get(ids.get(key) or "")
            if inc is not None and self._joinable(inc, alert.start, alert.end):
                return inc
        return None

    def _joinable(self, inc: Incident, start: datetime, end: datetime) -> bool:
        """Open or acknowledged, not a detector's over-budget day, and (grouped by entity) within
        the group window of its alerts in event time."""
        if inc.state == "resolved" or inc.over_budget is not None:
            return False
        if not inc.fingerprint.startswith("entity|"):  # one per rule and entity: no window
            return True
        window = self.policy.group_window
        return (_as_utc(start) <= parse_iso(inc.last_seen) + window
                and _as_utc(end) >= parse_iso(inc.first_seen) - window)

    def _link(self, inc: Incident, entity: str, alert: Alert, ids: dict[str, str | None],
              incs: dict[str, Incident], claimed: set[str], now: float) -> None:
        """Make ``inc`` the live incident of ``entity``, unless another live incident has it (two
        incidents are never merged) or ``inc`` already links ``MAX_ENTITIES``."""
        key = self._key(alert.rule_id, entity)
        holder = incs.get(ids.get(key) or "")
        if holder is not None and holder.id != inc.id and (
                self._joinable(holder, alert.start, alert.end)
                or (holder.state != "resolved" and parse_iso(holder.last_seen) > parse_iso(inc.last_seen))):
            return  # another live incident has it (or a later one: a late revision takes nothing back)
        if entity not in inc.all_entities():
            if len(inc.all_entities()) >= MAX_ENTITIES:
                return
            inc.entities = [*inc.all_entities(), entity]
            inc.version += 1
            note = f"{entity} (by {alert.rule_id})"
            inc.record(now, SYSTEM, "linked", note)
            inc.pending.append({"kind": "linked", "entity": entity, "rule": alert.rule_id,
                                "id": pending_id(inc, now)})
        if ids.get(key) != inc.id:
            ids[key] = inc.id
            claimed.add(key)

    # -- commands --------------------------------------------------------------------------
    def get(self, iid: str) -> Incident | None:
        text = self.backend.atomic(lambda tx: tx.get([self._inc + iid])[0])
        return Incident.from_json(text) if text else None

    def list(self, state: str | None = None, rule: str | None = None, limit: int | None = 1000) -> list[Incident]:
        """The newest ``limit`` incidents (None: all), oldest first."""
        out = [i for i in self._all() if (state is None or i.state == state)
               and (rule is None or rule in i.rule_stats())]
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

    def ack(self, iid: str, by: str, note: str = "", actor: dict[str, str] | None = None) -> Incident:
        return self._transition(iid, "acknowledged", by, note, actor)

    def resolve(self, iid: str, by: str, note: str = "", actor: dict[str, str] | None = None) -> Incident:
        return self._transition(iid, "resolved", by, note, actor)

    def _transition(self, iid: str, state: str, by: str, note: str,
                    actor: dict[str, str] | None = None) -> Incident:
        """``actor``: the Slack user who acted ({"id", "name"}), kept in the history."""

        def tx_fn(tx: Tx) -> Incident:
            inc = self._load(tx, iid)
            if inc.state == state:
                return inc
            if inc.state == "resolved":
                raise IncidentError(f"incident {iid} is already resolved")
            now = self.clock()
            inc.state = state
            inc.version += 1  # the posted message must show the new state
            inc.record(now, by, state, note, actor)
            inc.pending.append({"kind": state, "by": by, "note": note, "id": pending_id(inc, now),
                                **({"slack_user": dict(actor)} if actor else {})})
            self._write(tx, inc, now, notify=True, index=True)
            return inc

        return self.backend.atomic(tx_fn)

    def _load(self, tx: Tx, iid: str) -> Incident:
        text = tx.get([self._inc + iid])[0]
        if text is None:
            raise IncidentError(f"no incident {iid!r} (resolved ones expire after the retention)")
        return Incident.from_json(text)

    def silence_incident(self, iid: str, duration: timedelta, by: str, actor: dict[str, str] | None = None
                         ) -> tuple[Incident, list[Silence]]:
        """Silence every rule on each of the incident's entities for ``duration`` (one silence per
        entity, as ``incidents silence --entity`` makes); recorded in its history and message."""
        now = self.clock()
        reason = f"silenced from incident {iid}"

        def tx_fn(tx: Tx) -> tuple[Incident, list[Silence]]:
            inc = self._load(tx, iid)
            made = [Silence("SIL-" + _random.token_hex(4), "entity", e, by, reason, now,
                            now + duration.total_seconds()) for e in inc.all_entities()]
            kept = [s for s in self._load_silences(tx) if s.expires_at > now]
            self._save_silences(tx, [*kept, *made])
            note = f"{format_duration(duration)} (until {made[0].public()['expires_at']})"
            inc.silenced_by = made[0].id
            inc.version += 1
            inc.record(now, by, "silenced", note, actor)
            inc.pending.append({"kind": "silenced", "by": by, "note": note, "id": pending_id(inc, now),
                                **({"slack_user": dict(actor)} if actor else {})})
            self._write(tx, inc, now, notify=True, bump=False)
            return inc, made

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
    def _ttl_ms(self, inc: Incident) -> int | None:
        """Resolved incidents' keys expire after the retention; live ones' never."""
        return int(self.policy.retention.total_seconds() * 1000) if inc.state == "resolved" else None

    def _write(self, tx: Tx, inc: Incident, now: float, notify: bool, bump: bool = True,
               index: bool = False, known: Mapping[str, str | None] | None = None) -> None:
        """Store the incident; ``index`` also (re)writes its index and listing entries, needed
        when it is created or changes state (a resolved one's keys get the retention). ``known``:
        index keys already read (and decided) in this transaction."""
        ttl = self._ttl_ms(inc)
        if bump:
            inc.updated_at = now
        tx.set(self._inc + inc.id, inc.to_json(), ttl)
        if index:
            self._reindex(tx, inc, ttl, known or {})
            tx.zadd(self._index, inc.id, inc.created_at)
        if notify:
            # Most severe first, then oldest: a critical is delivered before any backlog of lows.
            tx.zadd(self._outbox, inc.id, now - OUTBOX_RANK * severity_rank(inc.severity))

    def _reindex(self, tx: Tx, inc: Incident, ttl: int | None, known: Mapping[str, str | None]) -> None:
        """Point the incident's index keys at it, except those another incident has taken since
        (an entity whose later alerts, past the group window, opened a new incident)."""
        keys = self._keys_of(inc)
        unknown = [k for k in keys if k not in known]
        found = dict(zip(unknown, tx.get([self._fp + k for k in unknown]), strict=True)) if unknown else {}
        for key in keys:
            holder = known[key] if key in known else found[key]
            if holder in (None, inc.id):
                tx.set(self._fp + key, inc.id, ttl)

    def _load_silences(self, tx: Tx) -> list[Silence]:
        text = tx.get([self._silences])[0]
        return [Silence(**d) for d in orjson.loads(text)] if text else []

    def _save_silences(self, tx: Tx, silences: list[Silence]) -> None:
        tx.set(self._silences, orjson.dumps([s.__dict__ for s in silences]).decode())


def _applied(inc: Incident, alert: Alert) -> bool:
    seen = inc.alerts.get(alert.alert_id)
    return seen is not None and seen[0] >= alert.revision


def _open(key: str, alert: Alert, now: float) -> Incident:
    inc = Incident(
        id=incident_id(key, alert.alert_id), fingerprint=key, rule_id=alert.rule_id,
        severity=alert.severity, entity=alert.entity, description=alert.description,
        summary=alert.summary, tags=list(alert.tags), first_seen=isoformat(alert.start),
        last_seen=isoformat(alert.end), count=alert.count, created_at=now, updated_at=now,
        evidence=list(alert.evidence[:MAX_EVIDENCE]),
        alerts={alert.alert_id: [alert.revision, alert.count, alert.rule_id]},
        explanation=getattr(alert, "explanation", None), entities=[alert.entity],
        rules={alert.rule_id: _rule_entry(alert)}, speaker=_speaker(alert))
    inc.record(now, SYSTEM, "opened", alert.summary)
    return inc


def _speaker(alert: Alert) -> str:
    return f"{isoformat(alert.end)}|{alert.rule_id}|{alert.alert_id}"


def _rule_entry(alert: Alert) -> dict[str, Any]:
    return {"severity": alert.severity, "count": alert.count, "first_seen": isoformat(alert.start),
            "last_seen": isoformat(alert.end), "entities": [alert.entity]}


def _join(inc: Incident, alert: Alert, now: float, policy: IncidentPolicy) -> None:
    """An alert (new, or a later revision) joins the incident: counts, times, its rule's line,
    the highest severity. A rule new to it is a thread reply of its own."""
    rules = inc.rule_stats()
    new_rule = alert.rule_id not in rules
    inc.alerts[alert.alert_id] = [alert.revision, alert.count, alert.rule_id]
    inc.count = sum(a[1] for a in inc.alerts.values())
    entry = rules.setdefault(alert.rule_id, _rule_entry(alert))
    entry["count"] = sum(a[1] for a in inc.alerts.values() if (a[2] if len(a) > 2 else inc.rule_id) == alert.rule_id)
    entry["first_seen"] = min(entry["first_seen"], isoformat(alert.start))
    entry["last_seen"] = max(entry["last_seen"], isoformat(alert.end))
    entities = entry.setdefault("entities", [inc.entity])
    if alert.entity not in entities and len(entities) < MAX_ENTITIES:
        entities.append(alert.entity)
    entry.pop("resolved", None)
    inc.rules = rules
    if severity_rank(alert.severity) > severity_rank(inc.severity):
        inc.severity = alert.severity
    # The newest alert in event time speaks for the incident, whatever order alerts were applied
    # in (one batch after a Redis outage, or one by one as they came): the same message either way.
    if (speaker := _speaker(alert)) >= inc.speaker:
        inc.summary, inc.speaker = alert.summary, speaker
        if alert.explanation:
            inc.explanation = alert.explanation
    _extend(inc, alert)
    if new_rule:
        inc.record(now, SYSTEM, "rule_joined", f"{alert.rule_id} ({alert.severity})")
        inc.pending.append({"kind": "rule", "rule": alert.rule_id, "severity": alert.severity,
                            "id": pending_id(inc, now)})
    _renotify_if_due(inc, now, policy)


def _rule_ended(inc: Incident, alert: Alert, now: float) -> bool:
    """Its detector saw the condition end. The incident resolves itself once every one of its
    rules has ended (a grouped incident stays open while another rule still fires); True if it did."""
    rules = inc.rule_stats()
    inc.alerts[alert.alert_id] = [alert.revision, alert.count, alert.rule_id]
    inc.count = sum(a[1] for a in inc.alerts.values())
    inc.last_seen = max(inc.last_seen, isoformat(alert.end))
    rules.setdefault(alert.rule_id, _rule_entry(alert))["resolved"] = True
    inc.rules = rules
    inc.summary = alert.summary
    inc.version += 1  # the posted message must show it
    if not all(r.get("resolved") for r in rules.values()):
        inc.record(now, SYSTEM, "rule_ended", alert.summary)
        return False
    inc.state = "resolved"
    inc.record(now, SYSTEM, "resolved", alert.summary)
    inc.pending.append({"kind": "resolved", "by": SYSTEM, "note": alert.summary, "id": pending_id(inc, now)})
    return True


def _as_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


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

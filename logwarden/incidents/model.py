"""Incidents and silences: plain records, stored as JSON."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from logwarden.alerts import SEVERITIES

STATES = ("open", "acknowledged", "resolved")
MAX_EVIDENCE = 5
MAX_HISTORY = 200
OVER_BUDGET = "over-budget:"  # the entity of a detector's over-budget incident: over-budget:YYYY-MM-DD
MAX_TALLY = 200  # entities an over-budget incident counts exactly; past it, the rarest give way
TOP = 5  # entities its summary names


def incident_id(fingerprint: str, first_alert_id: str) -> str:
    return "INC-" + hashlib.blake2b(f"{fingerprint}\x00{first_alert_id}".encode(), digest_size=5).hexdigest()


def fingerprint_of(rule_id: str, entity: str) -> str:
    return f"{rule_id}|{entity}"


MAX_ENTITIES = 10  # entities one incident links; past it, a newcomer's alerts open their own


def group_key(group_by: str, rule_id: str, entity: str) -> str:
    """The key under which an entity's live incident is found: the entity alone (alerts of every
    rule join it), or rule and entity (one incident per rule and entity)."""
    return f"entity|{entity}" if group_by == "entity" else fingerprint_of(rule_id, entity)


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def over_budget_entity(day: str) -> str:
    return OVER_BUDGET + day


def tally(counts: dict[str, int], entity: str, limit: int = MAX_TALLY) -> None:
    """Count one more alert of ``entity``. The map stays within ``limit`` entities (Space-Saving):
    past it, a newcomer takes the place of the least counted entity and inherits its count, plus
    one. The entities with the most alerts are always kept; a count is too high by at most what
    it inherited."""
    if entity in counts or len(counts) < limit:
        counts[entity] = counts.get(entity, 0) + 1
        return
    least, n = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    del counts[least]
    counts[entity] = n + 1


def top_entities(counts: dict[str, int], n: int = TOP) -> list[tuple[str, int]]:
    """The ``n`` entities with the most alerts, most first (ties by name, so it is stable)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def wall_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Incident:
    id: str
    fingerprint: str
    rule_id: str
    severity: str
    entity: str
    description: str
    summary: str
    tags: list[str]
    first_seen: str  # event time, ISO 8601 UTC
    last_seen: str
    count: int
    created_at: float  # wall clock, epoch seconds
    updated_at: float
    state: str = "open"
    evidence: list[str] = field(default_factory=list)
    alerts: dict[str, list[Any]] = field(default_factory=dict)  # alert_id -> [revision, count, rule id]
    version: int = 1
    notified_version: int = 0
    message: dict[str, Any] | None = None  # where its notification lives (channel, ts, ...)
    # A first post under way: {"since": epoch seconds, "channel": as routed}. Still set at a pass
    # means Slack may have it already: the dispatcher looks before posting again.
    sending: dict[str, Any] | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # follow-ups to send
    last_notified_at: float | None = None
    silenced_by: str | None = None
    explanation: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Only on a detector's over-budget incident of a day: {"day": "YYYY-MM-DD", "budget": int,
    # "entities": {entity: alerts folded}, "added": alerts folded by the change that wrote it}.
    # Its ``count`` is the number of alerts folded into it.
    over_budget: dict[str, Any] | None = None
    # The detectors that joined it: rule id -> {"severity", "count", "first_seen", "last_seen"
    # (event time), "entities" (its alerts' own), "resolved" (its detector saw the condition
    # end)}; ``rule_id`` is the first.
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The entities it is about: ``entity`` first, then those alerts linked to it (an address and
    # the account it logged into). Later alerts on any of them join it.
    entities: list[str] = field(default_factory=list)
    # Which alert's summary it shows: "<end>|<rule id>|<alert id>" of the newest in event time
    # (ties by rule, then alert id), so the message is the same whatever order alerts came in.
    speaker: str = ""

    def record(self, at: float, by: str, action: str, note: str = "", actor: dict[str, str] | None = None) -> None:
        """One line of its history; ``actor``: who acted in Slack ({"id": "U...", "name": ...})."""
        entry: dict[str, Any] = {"at": wall_iso(at), "by": by, "action": action}
        if note:
            entry["note"] = note
        if actor:
            entry["slack_user"] = dict(actor)
        self.history.append(entry)
        del self.history[:-MAX_HISTORY]

    def all_entities(self) -> list[str]:
        return self.entities or [self.entity]

    def rule_stats(self) -> dict[str, dict[str, Any]]:
        """Per rule: severity, count, first and last seen (an incident stored before grouping has
        one rule: its own)."""
        return self.rules or {self.rule_id: {"severity": self.severity, "count": self.count,
                                             "first_seen": self.first_seen, "last_seen": self.last_seen,
                                             "entities": [self.entity]}}

    def to_json(self) -> str:
        return orjson.dumps(self).decode()  # orjson serializes dataclasses natively (no asdict copy)

    @classmethod
    def from_json(cls, text: str) -> Incident:
        return cls(**orjson.loads(text))

    def public(self) -> dict[str, Any]:
        """What commands and exports show (no delivery internals)."""
        d = asdict(self)
        for key in ("alerts", "pending", "notified_version", "version", "sending", "speaker"):
            d.pop(key)
        d["created_at"], d["updated_at"] = wall_iso(self.created_at), wall_iso(self.updated_at)
        if self.last_notified_at is not None:
            d["last_notified_at"] = wall_iso(self.last_notified_at)
        if self.over_budget is None:
            d.pop("over_budget")
        else:
            ob = self.over_budget
            d["over_budget"] = {"day": ob["day"], "budget": ob["budget"], "alerts_folded": self.count,
                                "top_entities": [[e, n] for e, n in top_entities(ob["entities"], 20)]}
        return d

    def over_budget_summary(self) -> str:
        """Its summary: N alerts of R over its budget of B new incidents on D; top: a (12), ..."""
        ob = self.over_budget or {}
        top = ", ".join(f"{e} ({n:,})" for e, n in top_entities(ob.get("entities", {})))
        more = ", ..." if len(ob.get("entities", {})) > TOP else ""
        return (f"{self.count:,} alert{'s' if self.count != 1 else ''} of {self.rule_id} over its budget of "
                f"{ob.get('budget')} new incidents on {ob.get('day')}; top: {top}{more}")


@dataclass
class Silence:
    id: str
    matcher: str  # rule | entity | match
    value: str  # rule id, entity, or a glob over "rule_id|entity"
    author: str
    reason: str
    created_at: float
    expires_at: float

    def matches(self, rule_id: str, entity: str, now: float) -> bool:
        if now >= self.expires_at:
            return False
        if self.matcher == "rule":
            return rule_id == self.value
        if self.matcher == "entity":
            return entity == self.value
        return fnmatch.fnmatchcase(fingerprint_of(rule_id, entity), self.value)

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"], d["expires_at"] = wall_iso(self.created_at), wall_iso(self.expires_at)
        return d


def pending_id(inc: Incident, now: float) -> str:
    """A follow-up's own id (its reply carries it, so a reply already in Slack is not sent again)."""
    return f"{now:.6f}.{inc.version}.{len(inc.pending)}"

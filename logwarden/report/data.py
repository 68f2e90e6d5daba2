"""What a report says, read from the audit trail (no Bytewax, no plotting)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from logwarden.audit.search import Query, seal_of, search
from logwarden.audit.trail import Cipher, segments
from logwarden.audit.verify import verify
from logwarden.incidents.store import NoiseBudget
from logwarden.rules.base import Rule
from logwarden.timeutil import isoformat, parse_iso

EXAMPLES = 3  # redacted examples per violation reason
SEVERITIES = ("critical", "high", "medium", "low", "info")
STATES = ("open", "acknowledged", "resolved")

Counts = dict[str, list[int]]  # day (YYYY-MM-DD) -> [records, compliant]


@dataclass
class IncidentRow:
    id: str
    rule_id: str
    severity: str
    entity: str
    state: str
    opened: datetime
    acknowledged: datetime | None = None
    resolved: datetime | None = None
    by: str = ""  # who acknowledged or resolved it last
    day: str = ""  # the UTC day of its first alert's event time (the noise budget's day)

    @property
    def to_ack(self) -> timedelta | None:
        return self.acknowledged - self.opened if self.acknowledged else None

    @property
    def to_resolve(self) -> timedelta | None:
        return self.resolved - self.opened if self.resolved else None


@dataclass
class Coverage:
    framework: str
    control: str
    rules: list[str]
    alerts: int  # alerts of those rules in the period


@dataclass
class Budget:
    rule_id: str
    budget: int | None
    busiest: int  # most incidents it opened on one day of the period
    days_over: int


@dataclass
class Segment:
    cls: str
    name: str
    first_at: str | None
    last_at: str | None
    records: int | None
    sha256: str
    sealed: bool


@dataclass
class ReportData:
    start: datetime
    end: datetime
    scope: str | None
    generated: str
    sources: dict[str, Counts] = field(default_factory=dict)  # per source, per day
    scopes: dict[str, Counts] = field(default_factory=dict)  # per scope, per day
    violations: Counter[str] = field(default_factory=Counter)  # reason -> records
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # reason -> redacted violations
    alerts: list[dict[str, Any]] = field(default_factory=list)  # each alert's newest revision
    incidents: list[IncidentRow] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    model: dict[str, Any] | None = None  # the model in force at the period's last run
    warmup: dict[str, Any] | None = None  # its warm-up as the period's last run left it
    budgets: list[Budget] = field(default_factory=list)
    runs: int = 0
    verified: bool = True
    verification: list[str] = field(default_factory=list)
    evidence: list[Segment] = field(default_factory=list)

    @property
    def days(self) -> list[str]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    @staticmethod
    def rate(counts: Counts) -> float | None:
        records = sum(n for n, _ in counts.values())
        return sum(ok for _, ok in counts.values()) / records if records else None


def gather(root: Path, key: bytes, cipher: Cipher | None, start: datetime, end: datetime, scope: str | None,
           rules: list[Rule], budget: NoiseBudget) -> ReportData:
    """The period ``[start, end)`` of the trail at ``root``; ``scope`` cuts compliance and
    violations to that compliance scope."""
    out = ReportData(start, end, scope, isoformat(datetime.now(start.tzinfo).replace(microsecond=0)))
    first, last = isoformat(start), isoformat(end)
    # Scorecards are written when a run reports, which for a replay of old logs is after the
    # period: every record from its start on is read, and scorecards are cut by their own days.
    found = search(root, Query(start, None, classes=("decisions",)), key, cipher)
    alerts: dict[str, dict[str, Any]] = {}
    incidents: dict[str, IncidentRow] = {}
    for hit in found.hits:
        data = hit.data if isinstance(hit.data, dict) else {}
        if hit.kind == "scorecard":
            _scorecard(out, data, first[:10], last[:10])
            continue
        if hit.at >= last:
            continue
        if hit.kind == "run":
            out.runs += 1
            out.model = data.get("model") or out.model
        elif hit.kind == "model":
            out.warmup = data
        elif hit.kind == "violation":
            if scope is not None and scope not in (data.get("labels.scope") or ()):
                continue
            reason = str(data.get("reason"))
            out.violations[reason] += 1
            shown = out.examples.setdefault(reason, [])
            if len(shown) < EXAMPLES:
                shown.append(data)
        elif hit.kind == "alert":
            seen = alerts.get(data["alert_id"])
            if seen is None or data.get("revision", 0) >= seen.get("revision", 0):
                alerts[data["alert_id"]] = data
        elif hit.kind == "incident" and data.get("id"):
            _incident(incidents, parse_iso(hit.at), data)
    out.alerts = sorted(alerts.values(), key=lambda a: (a.get("start") or "", a["alert_id"]))
    out.incidents = sorted(incidents.values(), key=lambda i: (i.opened, i.id))
    out.coverage = coverage(rules, out.alerts)
    out.budgets = budgets(budget, out.incidents)
    report = verify(root, key)
    out.verified, out.verification = report.ok, report.lines()
    out.evidence = evidence(root, first, last)
    return out


def _scorecard(out: ReportData, card: dict[str, Any], first: str, last: str) -> None:
    """Per source (or scope) and day, the largest count any run reported: a resumed run carries
    its predecessor's counts, and a file replayed twice counts once."""
    if out.scope is None:
        tables = [(out.sources.setdefault(str(card.get("source")), {}), card.get("days") or {})]
    else:
        days = (card.get("scope_days") or {}).get(out.scope)
        tables = [(out.sources.setdefault(str(card.get("source")), {}), days)] if days else []
    tables += [(out.scopes.setdefault(name, {}), days) for name, days in (card.get("scope_days") or {}).items()
               if out.scope in (None, name)]
    for table, days in tables:
        for day, (records, compliant) in days.items():
            if first <= day <= last:
                seen = table.get(day)
                if seen is None or records > seen[0]:
                    table[day] = [records, compliant]


def _incident(incidents: dict[str, IncidentRow], at: datetime, data: dict[str, Any]) -> None:
    """An incident change: the flow's (opened, grown, resolved by its detector) or a person's
    (``incidents ack/resolve``)."""
    row = incidents.get(data["id"])
    state = str(data.get("state") or "open")
    if row is None:
        if not data.get("rule_id"):
            return  # a change to an incident opened before the period
        row = incidents[data["id"]] = IncidentRow(data["id"], data["rule_id"], str(data.get("severity") or "medium"),
                                                  str(data.get("entity") or ""), state, at,
                                                  day=str(data.get("first_seen") or isoformat(at))[:10])
    row.state = state
    if state == "acknowledged" and row.acknowledged is None:
        row.acknowledged = at
    if state == "resolved" and row.resolved is None:
        row.resolved = at
    if data.get("as"):
        row.by = str(data["as"])


def framework_of(tag: str) -> tuple[str, str] | None:
    """``pci-dss-4.0:10.2.1`` -> (PCI DSS 4.0, 10.2.1); ``nist-800-53:AC-7`` -> (NIST 800-53, AC-7);
    ``attack:T1110`` and Sigma's ``attack.t1110`` -> (ATT&CK, T1110); other tags -> None."""
    prefix, sep, control = tag.partition(":")
    if not sep and tag.lower().startswith("attack."):
        prefix, control = "attack", tag[len("attack."):]
    prefix = prefix.lower()
    if not control:
        return None
    if prefix == "attack":
        return "ATT&CK", control.upper() if re.fullmatch(r"t\d{4}(\.\d{3})?", control, re.I) else control
    if prefix.startswith("pci-dss"):
        version = prefix[len("pci-dss"):].lstrip("-")
        return f"PCI DSS {version}".strip(), control
    if prefix.startswith("nist"):
        return prefix.upper().replace("NIST-", "NIST "), control
    return None


def coverage(rules: list[Rule], alerts: list[dict[str, Any]]) -> list[Coverage]:
    fired = Counter(a["rule_id"] for a in alerts)
    table: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rule in rules:
        for tag in rule.meta.tags:
            found = framework_of(tag)
            if found is not None:
                table[found].append(rule.meta.id)
    return [Coverage(fw, control, sorted(ids), sum(fired[r] for r in ids))
            for (fw, control), ids in sorted(table.items())]


def budgets(budget: NoiseBudget, incidents: list[IncidentRow]) -> list[Budget]:
    """Each detector that opened incidents in the period: its noise budget (new incidents a UTC
    day of their event time) against its busiest day."""
    per_day = Counter((i.rule_id, i.day) for i in incidents)
    out = []
    for rule_id in sorted({r for r, _ in per_day}):
        days = [n for (r, _), n in per_day.items() if r == rule_id]
        limit = budget.of(rule_id)
        out.append(Budget(rule_id, limit, max(days), sum(1 for n in days if limit is not None and n > limit)))
    return out


def evidence(root: Path, first: str, last: str) -> list[Segment]:
    """The segments holding records of the period, with their seals and SHA-256: what
    ``logwarden evidence`` would bundle for it."""
    out = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for seg in segments(cls_dir):
            seal = seal_of(seg)
            if seal is not None and ((seal.get("last_at") or last) < first or (seal.get("first_at") or first) >= last):
                continue
            digest = hashlib.sha256(seg.read_bytes()).hexdigest()
            out.append(Segment(cls_dir.name, seg.name, (seal or {}).get("first_at"), (seal or {}).get("last_at"),
                               (seal or {}).get("records"), digest, seal is not None))
    return out

"""The alert record. ``alert_id`` is stable: the same alert from the same events gets the same
id on every re-run, so downstream stores and notifiers can deduplicate on it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logwarden.timeutil import isoformat

SEVERITIES = ("low", "medium", "high", "critical")
MODEL_RULE_ID = "anomaly.iforest"  # the anomaly model's alerts (a detector like a rule: budget, silences)
MAX_EVIDENCE = 5


def make_alert_id(rule_id: str, entity: str, first_event_id: str) -> str:
    digest = hashlib.blake2b(f"{rule_id}\x00{entity}\x00{first_event_id}".encode(), digest_size=12)
    return digest.hexdigest()


@dataclass(slots=True)
class Alert:
    alert_id: str
    rule_id: str
    severity: str
    entity: str
    start: datetime
    end: datetime
    count: int
    summary: str
    evidence: list[str] = field(default_factory=list)  # event ids / source:line references
    tags: list[str] = field(default_factory=list)
    revision: int = 0  # 0 when it fires; each later record with the same alert_id updates it
    description: str = ""
    score: float | None = None  # model alerts: the anomaly score (higher = more anomalous)
    explanation: str | None = None  # model alerts: what made it unusual, against the usual
    resolved: bool = False  # the detector saw its condition end: its incident resolves itself
    # Other entities the alert names (the account an address logged into, the pod a user exec'd
    # into): the incident store links them to the alert's incident (see the rule's ``link:``).
    related: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "severity": self.severity,
            "entity": self.entity,
            "start": isoformat(self.start),
            "end": isoformat(self.end),
            "count": self.count,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "tags": list(self.tags),
            "revision": self.revision,
            **({"score": round(self.score, 6)} if self.score is not None else {}),
            **({"explanation": self.explanation} if self.explanation else {}),
            **({"resolved": True} if self.resolved else {}),
            **({"related": list(self.related)} if self.related else {}),
        }

    def to_record(self) -> dict[str, Any]:
        """Every field, times in ISO 8601: what ``from_record`` turns back into this very alert
        (incident updates waiting for Redis are written to a file so)."""
        return {name: isoformat(v) if isinstance(v, datetime) else v
                for name in self.__slots__ if (v := getattr(self, name)) is not None}  # type: ignore[attr-defined]

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Alert:
        return cls(**{k: datetime.fromisoformat(v) if k in ("start", "end") else v for k, v in doc.items()})

    def one_line(self) -> str:
        return (f"[{self.severity.upper():8}] {self.rule_id} {self.entity}: {self.summary} "
                f"({isoformat(self.start)} .. {isoformat(self.end)})")

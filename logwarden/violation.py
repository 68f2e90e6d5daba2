"""The violation record: why a line was dropped or redacted. Never carries a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from logwarden.timeutil import isoformat

EXCERPT_CHARS = 160
REASONS = ("malformed", "missing_field", "bad_timestamp", "secret", "late_event", "too_long")
ACTIONS = ("dropped", "redacted")


@dataclass(slots=True)
class Violation:
    source: str
    line: int
    reason: str  # one of REASONS: the first check the line failed
    detail: str
    action: str  # dropped | redacted
    excerpt: str  # from the already-redacted line
    dataset: str | None = None
    timestamp: datetime | None = None
    event_id: str | None = None
    secret_kinds: tuple[str, ...] = ()
    item: int | None = None  # which record of a line that holds several (a Kubernetes EventList), from 1
    scopes: tuple[str, ...] = ()  # the compliance scopes of the record (labels.scope), when known

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
            "action": self.action,
            "excerpt": self.excerpt,
        }
        if self.dataset:
            out["dataset"] = self.dataset
        if self.timestamp is not None:
            out["@timestamp"] = isoformat(self.timestamp)
        if self.event_id:
            out["event_id"] = self.event_id
        if self.secret_kinds:
            out["secret_kinds"] = list(self.secret_kinds)
        if self.item is not None:
            out["item"] = self.item
        if self.scopes:
            out["labels.scope"] = list(self.scopes)
        return out


def excerpt(text: str) -> str:
    """A short, printable excerpt of an already-redacted line."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[: EXCERPT_CHARS + 1])
    return clean if len(clean) <= EXCERPT_CHARS else clean[: EXCERPT_CHARS - 1] + "…"

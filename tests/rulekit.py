"""Helpers for rule tests: build rules from inline YAML through the real loader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import mkdtemp

from logwarden.event import Event
from logwarden.rules.base import Rule
from logwarden.rules.loader import load_rules

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PACK = ROOT / "rules" / "default.yaml"


def rules_from_yaml(text: str) -> list[Rule]:
    path = Path(mkdtemp()) / "rules.yaml"
    path.write_text(text)
    return load_rules([path]).rules


def pack_rule(rule_id: str) -> Rule:
    return next(r for r in load_rules([DEFAULT_PACK]).rules if r.meta.id == rule_id)


def ev(sec: float, line: int, source: str = "s.log", **ecs: object) -> Event:
    doc = {"@timestamp": (T0 + timedelta(seconds=sec)).isoformat(), **ecs}
    return Event.from_ecs(doc, source=source, line=line)


def failed(sec: float, line: int, ip: str = "203.0.113.5", source: str = "auth.log", user: str = "alice") -> Event:
    return ev(sec, line, source, **{"event.action": "ssh_login", "event.outcome": "failure",
                                    "source.ip": ip, "user.name": user})

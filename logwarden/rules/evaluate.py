"""Running rules over events without Bytewax: for rule examples, ``rules test``, selftests and
the benchmark's plain-Python baseline. Same engine as the flow (``KeyEngine``), replay mode."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules import RuleIndex, group_keys, rules_for_key
from logwarden.rules.base import Rule
from logwarden.rules.engine import KeyEngine
from logwarden.timeutil import parse_duration

EXAMPLE_BASE = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def evaluate(rules: list[Rule], events: list[Event]) -> list[Alert]:
    """All alerts the rules raise over the events (the final record of each alert id last)."""
    by_key: dict[str, list[Event]] = defaultdict(list)
    index = RuleIndex(rules)
    for event in events:
        for key, (_, e) in group_keys(index, event):
            by_key[key].append(e)
    alerts: list[Alert] = []
    for key in sorted(by_key):
        engine = KeyEngine(key, rules_for_key(rules, key), None)
        fired, _ = engine.on_events(by_key[key])
        alerts.extend(fired)
        alerts.extend(engine.flush())
    return alerts


def expand_example_events(specs: list[dict[str, Any]]) -> list[Event]:
    """Example events: ECS documents plus ``at: +30s`` (offset from a fixed base time),
    ``repeat: n`` with ``every: 5s``, and ``{i}`` in any string value for the repeat index."""
    events: list[Event] = []
    for n, spec in enumerate(specs):
        doc = dict(spec)
        offset = parse_duration(str(doc.pop("at", "0s")).lstrip("+"))
        repeat = int(doc.pop("repeat", 1))
        every = parse_duration(str(doc.pop("every", "1s")))
        for i in range(repeat):
            d = {k: v.replace("{i}", str(i)) if isinstance(v, str) else v for k, v in doc.items()}
            d.setdefault("@timestamp", (EXAMPLE_BASE + offset + every * i).isoformat())
            events.append(Event.from_ecs(d, source="<example>", line=n * 100_000 + i + 1))
    return events


@dataclass(frozen=True)
class ExampleResult:
    rule_id: str
    index: int
    expect: str
    alerts: int

    @property
    def ok(self) -> bool:
        return (self.alerts > 0) == (self.expect == "alert")


def run_examples(rules: list[Rule], examples: dict[str, list[dict[str, Any]]]) -> list[ExampleResult]:
    results = []
    for rule in rules:
        for i, ex in enumerate(examples.get(rule.meta.id, [])):
            alerts = [a for a in evaluate([rule], expand_example_events(ex["events"]))
                      if a.rule_id == rule.meta.id]
            results.append(ExampleResult(rule.meta.id, i, ex["expect"], len({a.alert_id for a in alerts})))
    return results

"""Rule types and the rule set in force. A new rule type is one file plus one registry line."""

from __future__ import annotations

from logwarden.event import Event
from logwarden.rules.base import Rule, RuleMeta
from logwarden.rules.cardinality import CardinalityRule
from logwarden.rules.match import MatchRule
from logwarden.rules.new_term import NewTermRule
from logwarden.rules.sequence import SequenceRule
from logwarden.rules.silence import SilenceRule
from logwarden.rules.spike import SpikeRule
from logwarden.rules.threshold import ThresholdRule

RULE_TYPES: dict[str, type] = {
    "match": MatchRule,
    "threshold": ThresholdRule,
    "cardinality": CardinalityRule,
    "sequence": SequenceRule,
    "new_term": NewTermRule,
    "spike": SpikeRule,
    "silence": SilenceRule,
}


def group_keys(rules: list[Rule], event: Event) -> list[tuple[str, tuple[str, Event]]]:
    """``(field=value, (field, event))`` for each distinct group-by field of the rules to which
    the event is relevant (an event no rule could use goes no further)."""
    out: list[tuple[str, tuple[str, Event]]] = []
    seen: set[str] = set()
    for rule in rules:
        name = rule.meta.group_by
        if name in seen or not rule.meta.enabled or not rule.relevant(event):
            continue
        seen.add(name)
        value = event.get(name)
        if value is not None:
            out.append((f"{name}={value}", (name, event)))
    return out


def rules_for_key(rules: list[Rule], key: str) -> list[Rule]:
    name = key.split("=", 1)[0]
    return [r for r in rules if r.meta.group_by == name and r.meta.enabled]


__all__ = ["RULE_TYPES", "Rule", "RuleMeta", "group_keys", "rules_for_key"]

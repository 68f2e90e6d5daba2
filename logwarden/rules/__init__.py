"""Rule types and the rule set in force. A new rule type is one file plus one registry line."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from logwarden.event import Event
from logwarden.rows import EventRows
from logwarden.rules.base import Rule, RuleMeta
from logwarden.rules.cardinality import CardinalityRule
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import needs_of
from logwarden.rules.match import MatchRule
from logwarden.rules.new_term import NewTermRule
from logwarden.rules.sequence import SequenceRule
from logwarden.rules.silence import SilenceRule
from logwarden.rules.spike import SpikeRule
from logwarden.rules.temporal import TemporalRule
from logwarden.rules.threshold import ThresholdRule

RULE_TYPES: dict[str, type] = {
    "match": MatchRule,
    "threshold": ThresholdRule,
    "cardinality": CardinalityRule,
    "sequence": SequenceRule,
    "new_term": NewTermRule,
    "spike": SpikeRule,
    "silence": SilenceRule,
    "temporal": TemporalRule,
}


COLUMNS_FROM = 32  # events in a batch; measured: per event 15 us either way at 32, by column 4 us at 2,000


class RuleIndex:
    """The enabled rules, indexed by a value each requires (``event.action`` in {...}), so an
    event is tried only against rules it could satisfy. Built once per rule set."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = [r for r in rules if r.meta.enabled]
        self._sets: dict[int, frozenset[str]] = {}  # relevance bits -> the rule ids (interned)
        self._always: list[Rule] = []
        self._by: dict[str, dict[str, list[Rule]]] = {}
        for rule in self.rules:
            needs = rule_needs(rule)
            if needs is None:
                self._always.append(rule)
                continue
            field, values = needs
            for value in values:
                self._by.setdefault(field, {}).setdefault(value, []).append(rule)
        self._getters = [(Event.getter(f), table) for f, table in self._by.items()]
        self._needs = [rule_needs(rule) for rule in self.rules]
        self._order = {r.meta.id: i for i, r in enumerate(self.rules)}
        # Group-by fields whose every rule can thin a batch (``silence``: only the gaps matter).
        by_field: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_field.setdefault(rule.meta.group_by, []).append(rule)
        self._thinners = {f: rs for f, rs in by_field.items() if all(hasattr(r, "thin") for r in rs)}

    def candidates(self, event: Event) -> list[Rule]:
        found = list(self._always)
        for get, table in self._getters:
            value = get(event)
            if value is not None:
                hit = table.get(value if type(value) is str else str(value))
                if hit:
                    found.extend(hit)
        if len(found) > 1:
            found.sort(key=lambda r: self._order[r.meta.id])
        return found

    def route(self, events: list[Event] | EventRows, thin: bool = False) -> list[tuple[str, tuple[str, Event]]]:
        """``group_keys`` of a whole batch at once, each rule's relevance asked by column
        (``logwarden.rules.columns``). The same keys and events; the items come grouped by
        group-by field, and each key's events keep their order in the batch. A few events (a
        followed file's trickle) are asked one by one: below ``COLUMNS_FROM`` that is cheaper.

        ``thin`` (replays, which fold in event-time order at the end): a key whose every rule
        can thin its events (``silence``) gets only those its rules' folds need, which tell the
        same alerts (``tests/test_rules.py``): a source's every event is not held to its end."""
        if len(events) < COLUMNS_FROM:
            return [routed for event in events for routed in group_keys(self, event)]
        cols = Columns(events)
        relevant: dict[str, Mask] = {}
        thinned: dict[str, list[tuple[Rule, Mask]]] = {}
        # per event, the rules it is relevant to (bit i: self.rules[i]); Python ints past 64 rules
        bits = np.zeros(len(events), dtype=np.uint64 if len(self.rules) <= 64 else object)
        present: dict[str, set[str]] = {}  # per needed field, its values in the batch (as ``candidates``)
        for i, rule in enumerate(self.rules):
            if (needs := self._needs[i]) is not None and _absent(needs, cols, present):
                continue  # no event of the batch holds a value the rule needs: a mask of none
            by_column = getattr(rule, "relevant_columns", None)
            mask = by_column(cols) if by_column is not None else cols.each(rule.relevant)
            name = rule.meta.group_by
            relevant[name] = relevant[name] | mask if name in relevant else mask
            if thin and name in self._thinners:
                thinned.setdefault(name, []).append((rule, mask))
            bits[mask] |= np.uint64(1 << i) if bits.dtype == np.uint64 else 1 << i
        out: list[tuple[str, str, int]] = []  # (key, field, row)
        for name, mask in relevant.items():
            if name in thinned:
                mask = _thinned(thinned[name], cols, name)
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue
            codes, uniques = cols.factorized(name)
            picked = codes[rows].tolist()
            # the keys of the values routed only (a web batch routes 2% of its 300 addresses)
            keys = {c: None if (u := uniques[c]) is None else f"{name}={u}" for c in dict.fromkeys(picked)}
            out.extend((key, name, row) for row, code in zip(rows.tolist(), picked, strict=True)
                       if (key := keys[code]) is not None)
        # Only the events routed are built (``EventRows``), each told the rules it is relevant to.
        routed = np.unique(np.fromiter((row for _, _, row in out), dtype=np.intp, count=len(out)))
        for row, b in zip(routed.tolist(), bits[routed].tolist(), strict=True):  # one shared set per combination
            found = self._sets.get(b)
            if found is None:
                found = self._sets[b] = frozenset(r.meta.id for j, r in enumerate(self.rules) if b >> j & 1)
            events[row].relevant = found
        return [(key, (name, events[row])) for key, name, row in out]


def _absent(needs: tuple[str, frozenset[str]], cols: Columns, present: dict[str, set[str]]) -> bool:
    """Whether no event of the batch has a value of ``needs`` (field, values): the field's values
    are read once a batch from its factorized column, as text, as ``RuleIndex.candidates`` reads
    an event's (which ``tests/test_rules.py`` holds the batch's routing to)."""
    field, values = needs
    found = present.get(field)
    if found is None:
        _, uniques = cols.factorized(field)
        found = present[field] = {u if type(u) is str else str(u) for u in uniques if u is not None}
    return found.isdisjoint(values)


def _thinned(rules: list[tuple[Rule, Mask]], cols: Columns, name: str) -> Mask:
    """The events of each key (value of ``name``) that any of its rules' folds needs."""
    codes, _ = cols.factorized(name)
    keep = np.zeros(cols.n, dtype=bool)
    for rule, mask in rules:
        rows = np.flatnonzero(mask)
        keyed = codes[rows]
        if len(rows) and (keyed == keyed[0]).all():  # the usual batch: one key (one source)
            groups: Iterable[list[int]] = [rows.tolist()]
        else:
            by_key: dict[int, list[int]] = {}
            for row, code in zip(rows.tolist(), keyed.tolist(), strict=True):
                by_key.setdefault(code, []).append(row)
            groups = by_key.values()
        for same in groups:
            keep[[same[i] for i in rule.thin(cols.marks(same))]] = True  # type: ignore[attr-defined]
    return keep


def rule_needs(rule: Rule) -> tuple[str, frozenset[str]] | None:
    custom = getattr(rule, "needs", None)
    if custom is not None:
        return custom() if callable(custom) else custom
    return needs_of(rule.where)  # type: ignore[attr-defined]


def group_keys(rules: list[Rule] | RuleIndex, event: Event) -> list[tuple[str, tuple[str, Event]]]:
    """``(field=value, (field, event))`` for each distinct group-by field of the rules to which
    the event is relevant (an event no rule could use goes no further)."""
    candidates = rules.candidates(event) if isinstance(rules, RuleIndex) else rules
    out: list[tuple[str, tuple[str, Event]]] = []
    seen: set[str] = set()
    for rule in candidates:
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


__all__ = ["RULE_TYPES", "Rule", "RuleIndex", "RuleMeta", "group_keys", "rules_for_key"]

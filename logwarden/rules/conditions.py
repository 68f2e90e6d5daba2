"""Conditions on one event, written as data and compiled once into predicates.

    {field: event.action, equals: ssh_login}
    {field: url.query, regex: "(?i)union\\s+select"}
    {field: source.ip, cidr: [10.0.0.0/8, 192.168.0.0/16]}
    {field: source.ip, cidr: internal}      # the organisation's networks (LOGWARDEN_INTERNAL_NETWORKS)
    {field: http.response.status_code, gte: 400}
    {field: url.query, icontains: ["union select", "@@version"]}   # any, ignoring case
    {field: http.request.method, iequals: [get, options]}           # any, ignoring case
    {all: [...]}, {any: [...]}, {not: {...}}

A condition that cannot apply (unknown operator, bad regex or CIDR, an operator without a
field) is a load error, never a silent no-op.

Each predicate also answers for a whole batch at once (``evaluate(pred, columns)``): a field's
test runs once per distinct value of the batch (``logwarden.rules.columns``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from logwarden.event import Event, known_field
from logwarden.networks import DEFAULT_INTERNAL, in_networks, parse_networks
from logwarden.rules.columns import Columns, Mask

Predicate = Callable[[Event], bool]
# A value a predicate requires: (field, values) when it can only be true if the field's value
# is one of ``values``. Rules are indexed by it, so most rules are never tried on an event.
Needs = tuple[str, frozenset[str]]
OPERATORS = ("equals", "in", "regex", "cidr", "gt", "gte", "lt", "lte", "contains", "startswith",
             "exists", "icontains", "iequals")


class ConditionError(ValueError):
    """A condition is invalid; the message says what and the loader adds where."""


def always(_: Event) -> bool:
    return True


always.columns = lambda cols: np.ones(cols.n, dtype=bool)  # type: ignore[attr-defined]


def needs_of(pred: Predicate) -> Needs | None:
    return getattr(pred, "needs", None)


def evaluate(pred: Predicate, cols: Columns) -> Mask:
    """``pred`` over every event of a batch: by column where it has a column form."""
    by_column = getattr(pred, "columns", None)
    return by_column(cols) if by_column is not None else cols.each(pred)


def holds(rule: Any, event: Event) -> bool:
    """``rule.where(event)`` for an event the engine folds. When the router asked every rule
    (``Event.relevant``), its answer stands: it names the rules whose condition (and more) the
    event meets, and the engine folds only those; asking the condition again cost a replay of
    web logs 4% of its time. Otherwise (a followed file's trickle, a rule's examples) the
    condition itself."""
    relevant = event.relevant
    return rule.meta.id in relevant if relevant is not None else bool(rule.where(event))


def _with_columns(pred: Predicate, by_column: Callable[[Columns], Mask]) -> Predicate:
    pred.columns = by_column  # type: ignore[attr-defined]
    return pred


def combine(preds: Sequence[Predicate], all_of: bool) -> Callable[[Columns], Mask]:
    """The column form of ``all``/``any`` of ``preds``; stops early once the answer is known."""
    def by_column(cols: Columns) -> Mask:
        mask = evaluate(preds[0], cols)
        for pred in preds[1:]:
            if (all_of and not mask.any()) or (not all_of and mask.all()):
                break
            mask = mask & evaluate(pred, cols) if all_of else mask | evaluate(pred, cols)
        return mask
    return by_column


def _with_needs(pred: Predicate, needs: Needs | None) -> Predicate:
    if needs is not None:
        pred.needs = needs  # type: ignore[attr-defined]
    return pred


def _chain(preds: list[Predicate], all_of: bool) -> Predicate:
    """``p1(e) and p2(e) and ...`` (or ``or``) as nested closures: no generator per call."""
    if len(preds) == 1:
        return preds[0]
    head, rest = preds[0], _chain(preds[1:], all_of)
    if all_of:
        return lambda e: head(e) and rest(e)
    return lambda e: head(e) or rest(e)


NamedNetworks = Mapping[str, Sequence[str]]


def compile_condition(spec: Any, networks: NamedNetworks | None = None) -> Predicate:
    """``networks``: the named CIDR lists a ``cidr:`` may name (default: ``internal``)."""
    if networks is None:
        networks = {"internal": DEFAULT_INTERNAL}
    if spec is None:
        return always
    if not isinstance(spec, dict):
        raise ConditionError(f"a condition is a mapping, got {type(spec).__name__}")
    combinators = {"all", "any", "not"} & set(spec)
    if combinators:
        if len(spec) != 1:
            raise ConditionError(f"'{next(iter(combinators))}' stands alone in its mapping, "
                                 f"found also {sorted(set(spec) - combinators)}")
        kind, inner = next(iter(spec.items()))
        if kind == "not":
            pred = compile_condition(inner, networks)
            return _with_columns(lambda e: not pred(e), lambda cols: ~evaluate(pred, cols))
        if not isinstance(inner, list) or not inner:
            raise ConditionError(f"'{kind}' takes a non-empty list of conditions")
        preds = [compile_condition(c, networks) for c in inner]
        if len(preds) == 1:
            return preds[0]
        if kind == "all":
            needs = next((n for n in map(needs_of, preds) if n is not None), None)
            return _with_columns(_with_needs(_chain(preds, True), needs), combine(preds, True))
        return _with_columns(_chain(preds, False), combine(preds, False))
    if "field" not in spec:
        raise ConditionError(f"condition needs 'field' (or all/any/not): {spec}")
    ops = set(spec) - {"field"}
    unknown = ops - set(OPERATORS)
    if unknown:
        raise ConditionError(f"unknown operator(s) {sorted(unknown)}; known: {', '.join(OPERATORS)}")
    if len(ops) != 1:
        raise ConditionError(f"condition on {spec['field']!r} needs exactly one operator, got {sorted(ops)}")
    op = ops.pop()
    if not known_field(str(spec["field"])):
        raise ConditionError(f"unknown field {spec['field']!r} (ECS names, parser fields, or labels.*)")
    field = str(spec["field"])
    test, needs = _operator(op, spec[op], field, networks)
    get = Event.getter(field)
    key = (op, repr(spec[op]), repr(networks) if op == "cidr" else None)  # one test per batch however often written
    by_value = test if needs is not None else _remembered(test)
    return _with_columns(_with_needs(lambda e: test(get(e)), needs), lambda cols: cols.test(field, by_value, key))


REMEMBERED = 2048  # answers a costly test keeps (per condition, least recently used go first)


def _remembered(test: Test) -> Test:
    """``test`` answering again from memory for a string it was asked recently: batches repeat
    their paths, agents and addresses, and a regex or a CIDR lookup costs ten dict lookups.
    Bounded per condition (a Sigma set has hundreds) and holding only field values of events,
    which the standard has already redacted."""
    cached = functools.lru_cache(maxsize=REMEMBERED)(test)
    return lambda value: cached(value) if type(value) is str else test(value)


Test = Callable[[Any], bool]  # a leaf's test of one field's value


def _operator(op: str, arg: Any, field: str, networks: NamedNetworks) -> tuple[Test, Needs | None]:
    if op == "equals":
        if isinstance(arg, str):  # the common case: compare strings directly
            return (lambda v: v == arg or (v is not None and type(v) is not str and _eq(v, arg)),
                    (field, frozenset([arg])))
        return (lambda v: _eq(v, arg)), None
    if op == "in":
        if not isinstance(arg, list):
            raise ConditionError(f"'in' on {field!r} takes a list")
        values = frozenset(str(v) for v in arg)
        return (lambda v: v is not None and (
            v in values if type(v) is str else
            any(str(x) in values for x in v) if isinstance(v, list) else str(v) in values)), (field, values)
    return _unindexed(op, arg, field, networks), None


def _unindexed(op: str, arg: Any, field: str, networks: NamedNetworks) -> Test:
    if op == "regex":
        try:
            rx = re.compile(str(arg))
        except re.error as exc:
            raise ConditionError(f"bad regex for {field!r}: {exc}") from None
        return lambda v: v is not None and rx.search(str(v)) is not None
    if op == "cidr":
        if isinstance(arg, str) and "/" not in arg:
            if arg not in networks:
                raise ConditionError(f"'cidr' on {field!r}: no network set named {arg!r}; named: "
                                     f"{', '.join(networks)} (or a CIDR list)")
            arg = list(networks[arg])
        try:
            nets = parse_networks(arg if isinstance(arg, list) else [arg])
        except ValueError as exc:
            raise ConditionError(f"bad CIDR for {field!r}: {exc}") from None
        return lambda v: in_networks(v, nets)
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise ConditionError(f"'{op}' on {field!r} takes a number")
        compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
        return lambda v: (n := _num(v)) is not None and compare(n, float(arg))
    if op == "contains":
        needle = str(arg)
        return lambda v: v is not None and (needle in v if isinstance(v, list) else needle in str(v))
    if op in ("icontains", "iequals"):  # Sigma's default matching: case-insensitive
        words = arg if isinstance(arg, list) else [arg]
        if not words or not all(isinstance(w, str | int | float) and not isinstance(w, bool) for w in words):
            raise ConditionError(f"'{op}' on {field!r} takes a string or a list of strings")
        lowered = [str(w).lower() for w in words]
        return _icontains(lowered) if op == "icontains" else _iequals(frozenset(lowered))
    if op == "startswith":
        prefixes = tuple(str(a) for a in arg) if isinstance(arg, list) else (str(arg),)
        return lambda v: v is not None and str(v).startswith(prefixes)
    if not isinstance(arg, bool):
        raise ConditionError(f"'exists' on {field!r} takes true or false")
    return lambda v: (v is not None) is arg


def _eq(value: Any, arg: Any) -> bool:
    if value is None:
        return arg is None
    if isinstance(value, list):
        return any(_eq(v, arg) for v in value)
    return value == arg or str(value) == str(arg)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> list[str]:
    """A field's value as the strings a case-insensitive test looks at (each of a list's)."""
    if isinstance(value, list):
        return [str(v).lower() for v in value if v is not None]
    return [] if value is None else [str(value).lower()]


def _iequals(values: frozenset[str]) -> Test:
    return lambda v: v is not None and any(t in values for t in _text(v))


def _icontains(needles: list[str]) -> Test:
    if len(needles) <= 4:
        return lambda v: v is not None and any(n in t for t in _text(v) for n in needles)
    import ahocorasick_rs  # one pass over the value for many needles

    automaton = ahocorasick_rs.AhoCorasick(needles)
    return lambda v: v is not None and any(automaton.find_matches_as_indexes(t) for t in _text(v))

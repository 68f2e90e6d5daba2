"""Conditions on one event, written as data and compiled once into predicates.

    {field: event.action, equals: ssh_login}
    {field: url.query, regex: "(?i)union\\s+select"}
    {field: source.ip, cidr: [10.0.0.0/8, 192.168.0.0/16]}
    {field: source.ip, cidr: internal}      # the organisation's networks (LOGWARDEN_INTERNAL_NETWORKS)
    {field: http.response.status_code, gte: 400}
    {all: [...]}, {any: [...]}, {not: {...}}

A condition that cannot apply (unknown operator, bad regex or CIDR, an operator without a
field) is a load error, never a silent no-op.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from logwarden.event import Event, known_field
from logwarden.networks import DEFAULT_INTERNAL, in_networks, parse_networks

Predicate = Callable[[Event], bool]
# A value a predicate requires: (field, values) when it can only be true if the field's value
# is one of ``values``. Rules are indexed by it, so most rules are never tried on an event.
Needs = tuple[str, frozenset[str]]
OPERATORS = ("equals", "in", "regex", "cidr", "gt", "gte", "lt", "lte", "contains", "startswith",
             "exists")


class ConditionError(ValueError):
    """A condition is invalid; the message says what and the loader adds where."""


def always(_: Event) -> bool:
    return True


def needs_of(pred: Predicate) -> Needs | None:
    return getattr(pred, "needs", None)


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
            return lambda e: not pred(e)
        if not isinstance(inner, list) or not inner:
            raise ConditionError(f"'{kind}' takes a non-empty list of conditions")
        preds = [compile_condition(c, networks) for c in inner]
        if kind == "all":
            needs = next((n for n in map(needs_of, preds) if n is not None), None)
            return _with_needs(_chain(preds, True), needs)
        return _chain(preds, False)
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
    get = Event.getter(str(spec["field"]))
    return _operator(op, spec[op], get, str(spec["field"]), networks)


def _operator(op: str, arg: Any, get: Callable[[Event], Any], field: str, networks: NamedNetworks) -> Predicate:
    if op == "equals":
        if isinstance(arg, str):  # the common case: compare strings directly
            return _with_needs(lambda e: (v := get(e)) == arg or (
                v is not None and type(v) is not str and _eq(v, arg)), (field, frozenset([arg])))
        return lambda e: _eq(get(e), arg)
    if op == "in":
        if not isinstance(arg, list):
            raise ConditionError(f"'in' on {field!r} takes a list")
        values = frozenset(str(v) for v in arg)
        return _with_needs(lambda e: (v := get(e)) is not None and (
            v in values if type(v) is str else
            any(str(x) in values for x in v) if isinstance(v, list) else str(v) in values),
            (field, values))
    if op == "regex":
        try:
            rx = re.compile(str(arg))
        except re.error as exc:
            raise ConditionError(f"bad regex for {field!r}: {exc}") from None
        return lambda e: (v := get(e)) is not None and rx.search(str(v)) is not None
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
        return lambda e: in_networks(get(e), nets)
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise ConditionError(f"'{op}' on {field!r} takes a number")
        compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
        return lambda e: (n := _num(get(e))) is not None and compare(n, float(arg))
    if op == "contains":
        needle = str(arg)
        return lambda e: (v := get(e)) is not None and (
            needle in v if isinstance(v, list) else needle in str(v))
    if op == "startswith":
        prefixes = tuple(str(a) for a in arg) if isinstance(arg, list) else (str(arg),)
        return lambda e: (v := get(e)) is not None and str(v).startswith(prefixes)
    if not isinstance(arg, bool):
        raise ConditionError(f"'exists' on {field!r} takes true or false")
    return lambda e: (get(e) is not None) is arg


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

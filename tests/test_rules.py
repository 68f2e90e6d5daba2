"""The threshold rule and the per-key engine: early firing, updates, lateness, bounds."""

from __future__ import annotations

import dataclasses
import pickle
import random
from datetime import timedelta
from pathlib import Path

import pytest

from logwarden.event import Event
from logwarden.rules import COLUMNS_FROM, RuleIndex, group_keys, rules_for_key
from logwarden.rules.columns import Columns
from logwarden.rules.engine import KeyEngine
from logwarden.rules.loader import load_rules
from tests.rulekit import DEFAULT_PACK, T0, ev, failed, pack_rule, rules_from_yaml

AUTH_BRUTEFORCE = pack_rule("ssh-bruteforce")
BUILTIN_RULES = [AUTH_BRUTEFORCE]
KEY = "source.ip=203.0.113.5"


def engine(lateness: timedelta | None = timedelta(seconds=30)) -> KeyEngine:
    return KeyEngine(KEY, rules_for_key(BUILTIN_RULES, KEY), lateness)


def run(events: list[Event], lateness: timedelta = timedelta(seconds=30)) -> list:
    e = engine(lateness)
    alerts, late = e.on_events(events)
    return alerts + e.flush(), late


def test_fires_on_the_event_that_makes_it_true_then_updates_the_same_alert() -> None:
    e = engine(timedelta(0))
    first, _ = e.on_events([failed(k * 5, k + 1) for k in range(9)])
    assert first == []
    fired, _ = e.on_events([failed(45, 10)])
    assert len(fired) == 1 and fired[0].count == 10 and fired[0].revision == 0
    more, _ = e.on_events([failed(50 + k, 11 + k) for k in range(5)])
    assert more == []  # the burst goes on: no new alert
    final = e.flush()
    assert len(final) == 1 and final[0].alert_id == fired[0].alert_id
    assert final[0].count == 15 and final[0].revision == 1 and final[0].end == T0 + timedelta(seconds=54)
    assert final[0].entity == "203.0.113.5" and final[0].rule_id == AUTH_BRUTEFORCE.meta.id
    assert len(final[0].evidence) == 5


def test_slow_failures_never_fire() -> None:
    alerts, _ = run([failed(k * 60, k + 1) for k in range(30)])  # one a minute: 5 per window
    assert alerts == []


def test_a_new_burst_after_a_quiet_gap_is_a_new_alert() -> None:
    events = [failed(k, k + 1) for k in range(10)] + [failed(3600 + k, 100 + k) for k in range(10)]
    alerts, _ = run(events)
    assert len({a.alert_id for a in alerts}) == 2


def test_alert_ids_are_stable_across_runs_and_input_order() -> None:
    events = [failed(k * 3, k + 1) for k in range(20)]
    shuffled = events[:]
    random.Random(1).shuffle(shuffled)
    a, _ = run(events, timedelta(minutes=5))
    b, _ = run(shuffled, timedelta(minutes=5))
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]


def test_events_later_than_the_allowed_lateness_become_late_event_violations() -> None:
    e = engine(timedelta(seconds=10))
    e.on_events([failed(0, 1), failed(100, 2)])  # the watermark is now at 90s
    _, late = e.on_events([failed(50, 3)])
    assert len(late) == 1 and late[0].reason == "late_event" and late[0].line == 3
    _, ok = e.on_events([failed(95, 4)])  # within the lateness: accepted
    assert ok == []


def test_state_pickles_and_resumes_identically() -> None:
    events = [failed(k * 4, k + 1) for k in range(25)]
    whole, _ = run(events)
    e = engine()
    part1, _ = e.on_events(events[:12])
    resumed = KeyEngine(KEY, e.rules, e.lateness, pickle.loads(pickle.dumps(e.state)))
    part2, _ = resumed.on_events(events[12:])
    assert [a.to_dict() for a in part1 + part2 + resumed.flush()] == [a.to_dict() for a in whole]


def test_replay_mode_folds_in_event_time_order_whatever_the_arrival() -> None:
    events = [failed(k * 3, k + 1) for k in range(30)]
    late_first = events[15:] + events[:15]  # one file read far ahead of another
    a, late_a = run(events, None)
    b, late_b = run(late_first, None)
    assert late_a == late_b == []
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b] and a


def test_replay_buffer_is_capped() -> None:
    e = KeyEngine(KEY, rules_for_key(BUILTIN_RULES, KEY), None, replay_cap=1000)
    e.on_events([failed(k, k + 1) for k in range(5000)])
    assert len(e.state.buffer) <= 1001


def test_per_key_state_is_bounded_and_idle_keys_are_freed() -> None:
    e = engine(timedelta(0))
    e.on_events([failed(k * 0.01, k + 1) for k in range(10_000)])
    state = e.state.rule_states[AUTH_BRUTEFORCE.meta.id]
    assert len(state.recent) <= AUTH_BRUTEFORCE.count and not e.state.buffer
    quiet = engine(timedelta(0))
    quiet.on_events([failed(0, 1)])
    assert not quiet.idle()  # a failure within the window could still count
    quiet.on_events([Event(T0 + timedelta(hours=1), "a", 2, "syslog", action="ssh_login",
                           outcome="success", source_ip="203.0.113.5")])
    assert quiet.idle()


@pytest.mark.parametrize(("event", "keys"), [
    (failed(0, 1), ["source.ip=203.0.113.5"]),
    (Event(T0, "s", 1, "json", action="read"), []),
])
def test_group_keys(event: Event, keys: list[str]) -> None:
    assert [k for k, _ in group_keys(BUILTIN_RULES, event)] == keys


def _routes_each(index: RuleIndex, events: list[Event]) -> list[tuple[str, int]]:
    return sorted((key, id(e)) for event in events for key, (_, e) in group_keys(index, event))


def _routes_by_column(index: RuleIndex, events: list[Event]) -> list[tuple[str, int]]:
    routed = index.route(events)
    for key in {k for k, _ in routed}:  # each key's events in batch order
        rows = [events.index(e) for k, (_, e) in routed if k == key]
        assert rows == sorted(rows)
    return sorted((key, id(e)) for key, (_, e) in routed)


def test_routing_a_batch_by_column_is_routing_each_event(sim: Path) -> None:
    """The default pack over the simulated day's events (every format), in batches as the flow
    reads them: the same keys for the same events as asking each event of each rule."""
    from logwarden.parsers import ParserOptions, build_parser
    from logwarden.sources import LineReader, resolve_inputs
    from logwarden.standard import SourceChecker, load_profile
    from tests.conftest import sim_inputs

    index = RuleIndex(load_rules([DEFAULT_PACK]).enabled())
    options, routed = ParserOptions(), 0
    for path, fmt in resolve_inputs(sim_inputs(sim), None, options):
        checker = SourceChecker(load_profile(), build_parser(fmt, options), path)
        for chunk in LineReader(path, fmt, 2000).chunks():
            events = [x for x in checker.check_lines(chunk.lines, chunk.first_line) if isinstance(x, Event)]
            each = _routes_each(index, events)
            assert _routes_by_column(index, events) == each
            routed += len(each)
    assert routed > 1000


def test_routing_by_column_keeps_each_values_own_type_and_lists() -> None:
    """Values equal to Python but not to a condition (1, 1.0, True), list fields and unset fields
    give the answers of the per-event predicates."""
    rules = rules_from_yaml("""
rules:
  - id: numbers
    description: numbers
    severity: low
    type: match
    group_by: labels.n
    where: {field: labels.n, gte: 1}
  - id: roles
    description: roles
    severity: low
    type: threshold
    group_by: user.name
    count: 2
    window: 1m
    where: {all: [{field: user.roles, in: [admin]}, {not: {field: source.ip, cidr: internal}}]}
    exceptions: [{field: user.name, startswith: svc-}]
  - id: truth
    description: truth
    severity: low
    type: cardinality
    group_by: source.ip
    field: user.name
    count: 2
    window: 1m
    where: {any: [{field: labels.flag, equals: true}, {field: url.path, regex: "^/admin"}]}
""")
    values = [1, 1.0, True, "1", None, 0, False]
    events = [ev(k, k + 1, **{"labels.n": values[k % 7], "labels.flag": values[(k + 3) % 7],
                              "user.roles": [["admin"], ["dev", "admin"], [], None][k % 4],
                              "user.name": ["alice", "svc-etl", None][k % 3],
                              "source.ip": ["10.0.0.1", "203.0.113.9", None][k % 3],
                              "url.path": ["/admin/x", "/", None][k % 3]}) for k in range(84)]
    index = RuleIndex(rules)
    assert _routes_by_column(index, events) == _routes_each(index, events)
    keys = {key for key, _ in index.route(events)}
    assert {"labels.n=1", "labels.n=1.0"} <= keys and "labels.n=True" not in keys  # a flag is no number
    cols = Columns(events)
    assert cols.values("labels.n") == [e.get("labels.n") for e in events]
    assert [type(v) for v in cols.values("labels.n")] == [type(e.get("labels.n")) for e in events]


@pytest.mark.parametrize("seed", range(40))
def test_a_replay_thins_a_silence_keys_events_and_tells_the_same(seed: int) -> None:
    """A source's events in random batches, with gaps from seconds to hours and some disorder:
    folded whole, and folded from what ``route(thin=True)`` keeps of each batch, the
    ``log-source-silent`` rule tells the same alerts (ids, spans, evidence)."""
    rng = random.Random(seed)
    rule = pack_rule("log-source-silent")
    events, sec = [], 0.0
    for line in range(1, rng.randint(40, 400)):
        sec += rng.choice([rng.uniform(0, 90), rng.uniform(0, 1800), rng.uniform(1800, 4 * 3600)])
        events.append(ev(sec + rng.uniform(-120, 0), line, "api.jsonl", **{"event.dataset": "json"}))
    index = RuleIndex([rule])
    whole, thinned, start = KeyEngine("log.file.path=api.jsonl", [rule], None), \
        KeyEngine("log.file.path=api.jsonl", [rule], None), 0
    kept = 0
    while start < len(events):
        batch = events[start:start + rng.randint(COLUMNS_FROM, 120)]
        start += len(batch)
        whole.on_events(batch)
        routed = [e for _, (_, e) in index.route(batch, thin=True)]
        assert routed == [e for e in batch if e in routed]  # batch order kept
        kept += len(routed)
        thinned.on_events(routed)
    told = [a.to_dict() for a in whole.flush()]
    assert told == [a.to_dict() for a in thinned.flush()]
    assert kept < len(events)
    if seed == 0:
        assert told  # the seeds do make silences


@pytest.mark.parametrize("column", [
    ["web"] * 5, [None] * 4, ["a", "b", "a", None, "b"], [1, True, 1.0, 1], [True, True], ["x", "x", None],
    [["a"], ["a"]], [], ["x", "x", "x", 1],
])
def test_a_column_factorized_gives_back_every_value_of_its_own_type(column: list) -> None:
    """``uniques[codes[i]]`` is row i's value, of the same type (1, 1.0 and True are one dict
    key, and a one-value column is read in one C pass)."""
    from logwarden.rules.columns import _factorize

    codes, uniques = _factorize(column)
    assert len(codes) == len(column)
    assert [(type(uniques[c]), uniques[c]) for c in codes.tolist()] == [(type(v), v) for v in column]
    if column and all(v == column[0] for v in column) and {type(v) for v in column} in ({str}, {type(None)}):
        assert len(uniques) == 1  # one value: shared by every row


def test_a_fold_asks_the_condition_only_of_events_the_router_did_not_ask() -> None:
    """A batch's router asks every rule about each event and leaves its answer on it
    (``Event.relevant``); the engine folds the event into those rules only, and their folds take
    that answer instead of asking the condition again. A followed file's trickle comes without
    one: then it is asked of each event. Both give the same alerts."""
    where, asked = AUTH_BRUTEFORCE.where, []

    def counting(e: Event) -> bool:
        asked.append(e.line)
        return where(e)

    rule = dataclasses.replace(AUTH_BRUTEFORCE, where=counting)
    events = [failed(k * 5, k + 1) for k in range(12)]
    events.insert(6, ev(27, 99, "auth.log", **{"event.action": "ssh_login", "event.outcome": "success",
                                                "source.ip": "203.0.113.5", "user.name": "alice"}))

    def alerts(relevant: frozenset[str] | None) -> tuple[list[tuple[str, int, int]], list[int]]:
        for e in events:
            e.relevant = None if relevant is None else relevant if where(e) else frozenset()
        asked.clear()
        engine = KeyEngine(KEY, [rule], timedelta(0))
        fired, _ = engine.on_events(events)
        return [(a.alert_id, a.count, a.revision) for a in fired + engine.flush()], list(asked)

    each, asked_each = alerts(None)
    routed, asked_routed = alerts(frozenset({rule.meta.id}))
    assert routed == each and each and each[-1][1] == 12
    assert set(asked_each) == {e.line for e in events} and asked_routed == []


def test_parsed_networks_hash_once_and_stay_equal_to_their_tuple() -> None:
    """Every cached lookup hashes its network set: parsed once, it keeps its hash (and pickles)."""
    from logwarden.networks import DEFAULT_INTERNAL, in_networks, parse_networks

    nets = parse_networks(DEFAULT_INTERNAL)
    plain = tuple(nets)
    assert nets == plain and hash(nets) == hash(plain)
    again = pickle.loads(pickle.dumps(nets))
    assert again == nets and hash(again) == hash(plain)
    assert in_networks("10.1.2.3", nets) and in_networks("fd00::1", again) and not in_networks("8.8.8.8", nets)
    assert not in_networks("not an address", nets) and not in_networks(None, nets)

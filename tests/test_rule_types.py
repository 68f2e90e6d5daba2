"""Every rule type: tables (incl. out-of-order and late input), the contract over the registry,
the loader's messages, overrides, and the rules commands."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from logwarden.errors import ConfigError
from logwarden.rules import RULE_TYPES, rules_for_key
from logwarden.rules.engine import KeyEngine
from logwarden.rules.evaluate import evaluate, expand_example_events
from logwarden.rules.loader import RuleLoadError, load_rules
from tests.fakes import redis_prefix, redis_url  # noqa: F401 - fixtures
from tests.rulekit import DEFAULT_PACK, ROOT, T0, ev, rules_from_yaml

# One minimal rule per registered type: adding a type without a sample fails the contract test.
SAMPLES = {
    "match": "where: {field: event.action, equals: StopLogging}\n",
    "threshold": "where: {field: event.outcome, equals: failure}\ncount: 3\nwindow: 1m\n",
    "cardinality": "where: {field: event.outcome, equals: failure}\nfield: user.name\ncount: 3\nwindow: 1m\n",
    "sequence": ("first: {field: event.outcome, equals: failure}\ncount: 2\n"
                 "then: {field: event.outcome, equals: success}\nwindow: 5m\n"),
    "new_term": "field: source.ip\nlearn: 1h\n",
    "spike": "factor: 3\nwindow: 1m\nhistory: 5\nmin_history: 2\nmin_count: 5\n",
    "silence": "max_gap: 30m\nactive_hours: '08-18'\n",
    "temporal": ("all_of:\n  - {field: event.outcome, equals: success}\n"
                 "  - {field: event.action, equals: StopLogging}\nwindow: 5m\n"),
}


def rule_of(rtype: str, group_by: str = "user.name", extra: str = "") -> object:
    text = (f"rules:\n  - id: r-{rtype}\n    type: {rtype}\n    description: test {rtype}\n"
            f"    severity: low\n    group_by: {group_by}\n")
    text += "".join(f"    {line}\n" for line in (SAMPLES[rtype] + extra).splitlines())
    return rules_from_yaml(text)[0]


def alerts_of(rule: object, events: list) -> list:
    return evaluate([rule], events)  # type: ignore[list-item]


def e(sec: float, line: int, **ecs: object):
    base = {"user.name": "bob", "source.ip": "10.0.0.1"}
    return ev(sec, line, **{**base, **ecs})


def test_every_registered_type_has_a_contract_sample() -> None:
    assert set(SAMPLES) == set(RULE_TYPES)


@pytest.mark.parametrize("rtype", sorted(RULE_TYPES))
def test_rule_contract(rtype: str) -> None:
    """Empty input finds nothing; state pickles mid-stream and resumes to the same result;
    irrelevant events never reach a rule's alerts; results do not depend on arrival order."""
    rule = rule_of(rtype)
    assert alerts_of(rule, []) == []
    rng = random.Random(5)
    events = [e(k * 7 + (3600 * 4 if k > 30 else 0), k + 1,
                **{"event.outcome": rng.choice(["failure", "success"]),
                   "user.name": "bob", "event.action": rng.choice(["read", "StopLogging"]),
                   "source.ip": f"10.0.0.{rng.randint(1, 3)}", "event.dataset": "json"})
              for k in range(60)]
    whole = [a.to_dict() for a in alerts_of(rule, events)]
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert [a.to_dict() for a in alerts_of(rule, shuffled)] == whole
    key = "user.name=bob"
    engine = KeyEngine(key, rules_for_key([rule], key), None)
    first, _ = engine.on_events(events[:25])
    resumed = KeyEngine(key, engine.rules, None, pickle.loads(pickle.dumps(engine.state)))
    rest, _ = resumed.on_events(events[25:])
    assert [a.to_dict() for a in first + rest + resumed.flush()] == whole
    assert all(a["rule_id"] == rule.meta.id for a in whole)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("rtype", "events", "expected"), [
    ("match", [e(0, 1, **{"event.action": "StopLogging"})], 1),
    ("match", [e(0, 1, **{"event.action": "StopLogging"}), e(60, 2, **{"event.action": "StopLogging"})], 1),
    ("match", [e(0, 1, **{"event.action": "StartLogging"})], 0),
    ("threshold", [e(k, k, **{"event.outcome": "failure"}) for k in (5, 1, 3)], 1),  # out of order
    ("threshold", [e(k * 40, k, **{"event.outcome": "failure"}) for k in range(3)], 0),  # too slow
    ("cardinality", [e(k, k, **{"event.outcome": "failure", "source.ip": f"10.0.0.{k}"}) for k in range(3)], 0),
    ("cardinality", [e(k, k, **{"event.outcome": "failure", "user.name": "bob"}) for k in range(9)], 0),
    ("sequence", [e(0, 1, **{"event.outcome": "failure"}), e(5, 2, **{"event.outcome": "failure"}),
                  e(9, 3, **{"event.outcome": "success"})], 1),
    ("sequence", [e(9, 3, **{"event.outcome": "success"}), e(0, 1, **{"event.outcome": "failure"}),
                  e(5, 2, **{"event.outcome": "failure"})], 1),  # arrival order does not matter
    ("sequence", [e(0, 1, **{"event.outcome": "failure"}), e(9, 3, **{"event.outcome": "success"})], 0),
    ("new_term", [e(0, 1), e(60, 2, **{"source.ip": "10.0.0.2"}), e(7200, 3, **{"source.ip": "10.0.0.1"})], 0),
    ("new_term", [e(0, 1), e(7200, 2, **{"source.ip": "203.0.113.9"})], 1),
    ("spike", [e(k * 60, k) for k in range(5)] + [e(300 + k, 100 + k) for k in range(20)], 1),
    ("spike", [e(k * 60 + j, k * 10 + j) for k in range(6) for j in range(3)], 0),
    ("silence", [e(0, 1), e(3600 * 2, 2)], 1),  # two quiet office hours (10:00 -> 12:00 UTC)
    ("silence", [e(3600 * 9, 1), e(3600 * 21, 2)], 0),  # quiet at night (19:00 -> 07:00 UTC)
])
def test_rule_type_table(rtype: str, events: list, expected: int) -> None:
    rule = rule_of(rtype)
    assert len({a.alert_id for a in alerts_of(rule, events)}) == expected


def test_cardinality_fires_on_distinct_values_and_counts_them() -> None:
    rule = rule_of("cardinality", group_by="source.ip")
    alerts = alerts_of(rule, [e(k, k, **{"event.outcome": "failure", "user.name": f"u{k}"}) for k in range(6)])
    assert len({a.alert_id for a in alerts}) == 1 and "distinct user.name" in alerts[-1].summary


def test_cardinality_state_is_bounded() -> None:
    rule = rule_of("cardinality", group_by="source.ip", extra="max_tracked: 100\n")
    key = "source.ip=10.0.0.1"
    engine = KeyEngine(key, rules_for_key([rule], key), timedelta(0))
    engine.on_events([e(k * 0.001, k, **{"event.outcome": "failure", "user.name": f"u{k}"})
                      for k in range(20_000)])
    assert len(engine.state.rule_states[rule.meta.id].values) <= 100


def test_new_term_seeded_from_a_baseline_file(tmp_path: Path) -> None:
    seed = tmp_path / "baseline.jsonl"
    seed.write_text('{"entity": "bob", "term": "10.0.0.1"}\n')
    rule = rule_of("new_term", extra=f"seed_file: {seed}\n")
    assert alerts_of(rule, [e(0, 1), e(10, 2, **{"source.ip": "10.0.0.1"})]) == []
    assert len(alerts_of(rule, [e(0, 1), e(10, 2, **{"source.ip": "10.9.9.9"})])) == 1


def test_late_events_are_violations_in_live_mode() -> None:
    rule = rule_of("threshold")
    key = "user.name=bob"
    engine = KeyEngine(key, rules_for_key([rule], key), timedelta(seconds=30))
    engine.on_events([e(0, 1, **{"event.outcome": "failure"}), e(300, 2, **{"event.outcome": "failure"})])
    _, late = engine.on_events([e(100, 3, **{"event.outcome": "failure"})])
    assert [v.reason for v in late] == ["late_event"] and late[0].line == 3


def test_exceptions_are_data() -> None:
    rule = rule_of("match", extra="exceptions:\n  - {field: source.ip, cidr: 10.0.0.0/8}\n")
    assert alerts_of(rule, [e(0, 1, **{"event.action": "StopLogging"})]) == []
    assert alerts_of(rule, [e(0, 1, **{"event.action": "StopLogging", "source.ip": "8.8.8.8"})])


@pytest.mark.parametrize(("body", "message"), [
    ("type: threshold\ncount: 3\nwindow: 1m\ntreshold: 2\n", ":9 bad: unknown parameter 'treshold'"),
    ("type: threshold\nwindow: 1m\n", "missing parameter for a threshold rule 'count'"),
    ("type: threshold\ncount: 3\nwindow: soon\n", "not a duration"),
    ("type: nope\n", "unknown type 'nope'"),
    ("type: match\nwhere: {field: user.nmae, equals: x}\n", "unknown field 'user.nmae'"),
    ("type: match\nwhere: {field: url.path, regex: '(x'}\n", "bad regex"),
    ("type: match\nwhere: {field: source.ip, cidr: 10.0.0.0/33}\n", "bad CIDR"),
    ("type: match\nwhere: {field: source.ip, equals: 1, in: [2]}\n", "exactly one operator"),
    ("type: match\nwhere: {field: source.ip, near: 1}\n", "unknown operator"),
    ("type: silence\nmax_gap: 1h\nactive_hours: '18-08'\n", "active_hours"),
])
def test_loader_names_file_line_and_rule(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "local.yaml"
    head = "rules:\n  - id: bad\n    description: d\n    severity: low\n    group_by: user.name\n"
    path.write_text(head + "".join(f"    {line}\n" for line in body.splitlines()))
    with pytest.raises(RuleLoadError) as err:
        load_rules([path])
    assert message in str(err.value) and f"{path}:" in str(err.value)


def test_loader_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("rules:\n  - {id: a, type: nope, description: d, severity: low, group_by: user.name}\n"
                    "  - {id: b, type: match, description: d, severity: urgent, group_by: user.name}\n")
    with pytest.raises(RuleLoadError) as err:
        load_rules([path])
    assert len(err.value.problems) == 2


def test_local_overrides_without_editing_the_pack(tmp_path: Path) -> None:
    local = tmp_path / "local.yaml"
    local.write_text("overrides:\n"
                     "  - {id: ssh-bruteforce, count: 20, severity: critical}\n"
                     "  - {id: k8s-exec-new-namespace, enabled: false}\n"
                     "  - id: sudo-read-shadow\n    exceptions: [{field: user.name, equals: backup}]\n")
    rs = load_rules([DEFAULT_PACK, local])
    by_id = {r.meta.id: r for r in rs.rules}
    assert by_id["ssh-bruteforce"].count == 20 and by_id["ssh-bruteforce"].meta.severity == "critical"  # type: ignore[attr-defined]
    assert not by_id["k8s-exec-new-namespace"].meta.enabled
    assert "k8s-exec-new-namespace" not in {r.meta.id for r in rs.enabled()}
    shadow = {"event.action": "sudo_command", "process.command_line": "/bin/cat /etc/shadow"}
    assert evaluate([by_id["sudo-read-shadow"]], [e(0, 1, **shadow, **{"user.name": "backup"})]) == []
    assert evaluate([by_id["sudo-read-shadow"]], [e(0, 1, **shadow, **{"user.name": "eve"})])
    bad = tmp_path / "bad.yaml"
    bad.write_text("overrides:\n  - {id: ghost, enabled: false}\n")
    with pytest.raises(RuleLoadError, match=r"bad\.yaml:2 ghost: override of an unknown rule"):
        load_rules([DEFAULT_PACK, bad])


def test_every_shipped_rule_has_examples_that_pass() -> None:
    rs = load_rules([DEFAULT_PACK])
    for rule in rs.rules:
        expects = {ex["expect"] for ex in rs.examples[rule.meta.id]}
        assert expects == {"alert", "none"}, rule.meta.id
        for ex in rs.examples[rule.meta.id]:
            fired = evaluate([rule], expand_example_events(ex["events"]))
            assert bool(fired) == (ex["expect"] == "alert"), (rule.meta.id, ex)


def test_pack_covers_the_controls() -> None:
    tags = {t for r in load_rules([DEFAULT_PACK]).rules for t in r.meta.tags}
    assert {"pci-dss-4.0:10.2.1.4", "pci-dss-4.0:10.2.1.6", "nist-800-53:AC-7", "nist-800-53:AU-9"} <= tags


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logwarden.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)


def test_rules_validate_and_test_commands(tmp_path: Path) -> None:
    ok = _cli("rules", "validate")
    assert ok.returncode == 0 and "20 rules" in ok.stdout
    tested = _cli("rules", "test")
    assert tested.returncode == 0 and "FAIL" not in tested.stdout and "48 of 48" in tested.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: x, type: match, description: d, severity: low, group_by: user.name,\n"
                   "     where: {field: event.action, equals: a},\n"
                   "     examples: [{expect: alert, events: [{event.action: b}]}]}\n")
    failing = _cli("rules", "test", str(bad))
    assert failing.returncode == 1 and "FAIL x example 1" in failing.stdout
    assert "needs at least one positive and one negative" in failing.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - {id: y, type: nope}\n")
    for args in (("rules", "validate", str(broken)), ("run", "--rules", str(broken), "-i", str(bad))):
        proc = _cli(*args)
        assert proc.returncode == 2 and f"{broken}:2 y: unknown type 'nope'" in proc.stderr


def test_missing_pack_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from logwarden.rules import loader

    monkeypatch.setattr(loader.Path, "is_file", lambda self: False)
    with pytest.raises(ConfigError, match=r"rules/default\.yaml"):
        loader.default_rule_files()


def test_new_term_keeps_learned_terms_in_redis_across_restarts(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    import dataclasses

    from logwarden.incidents.redis_backend import RedisBackend
    from logwarden.rules.terms import STARTED, RedisTermStore

    client = RedisBackend.from_url(redis_url, redis_prefix).client
    rule = dataclasses.replace(rule_of("new_term"), store=RedisTermStore(client, redis_prefix))
    first = [e(0, 1), e(60, 2, **{"source.ip": "10.0.0.2"})]  # learned in the first hour
    assert alerts_of(rule, first) == []
    stored = client.hgetall(f"{redis_prefix}terms:{rule.meta.id}:bob")
    assert stored == {"10.0.0.1": first[0].id, "10.0.0.2": first[1].id, STARTED: first[0].timestamp.isoformat()}
    # A restart within the learning hour: the key learns on, as it would have without the restart.
    assert alerts_of(rule, [e(1800, 6, **{"source.ip": "10.0.0.3"})]) == []
    # A restart: fresh state, same Redis. Known terms stay quiet, a new one fires at once.
    assert alerts_of(rule, [e(86400, 3, **{"source.ip": "10.0.0.2"})]) == []
    new = e(86400, 4, **{"source.ip": "203.0.113.9"})
    [fired] = alerts_of(rule, [new])
    # A crash before that alert reached any output, and a resume that replays the same event
    # with state from before it: the term is in Redis, yet the alert is raised again (same id,
    # which the outputs de-duplicate); any other event with that term stays quiet.
    assert alerts_of(rule, [new]) == [fired]
    assert alerts_of(rule, [e(86401, 5, **{"source.ip": "203.0.113.9"})]) == []


def test_silence_in_a_live_run_alerts_on_the_clock_and_updates_when_the_source_returns() -> None:
    rule = rule_of("silence", group_by="log.file.path")
    key = "log.file.path=s.log"
    engine = KeyEngine(key, rules_for_key([rule], key), timedelta(seconds=0))
    engine.on_events([e(0, 1), e(60, 2)])  # 10:00, 10:01
    assert engine.clock_driven
    assert engine.tick(T0 + timedelta(minutes=20)) == []  # not yet
    [fired] = engine.tick(T0 + timedelta(hours=1, minutes=5))
    assert fired.revision == 0 and "so far" in fired.summary
    assert engine.tick(T0 + timedelta(hours=2)) == []  # once
    back, _ = engine.on_events([e(3 * 3600, 3)])  # 13:00: the source speaks again
    [update] = back
    assert update.alert_id == fired.alert_id and update.revision == 1 and "so far" not in update.summary


def test_silence_on_the_clock_respects_quiet_hours() -> None:
    rule = rule_of("silence", group_by="log.file.path")
    key = "log.file.path=s.log"
    engine = KeyEngine(key, rules_for_key([rule], key), timedelta(seconds=0))
    engine.on_events([e(3600 * 8, 1)])  # 18:00, the end of the active hours (08-18)
    assert engine.tick(T0 + timedelta(hours=21)) == []  # 07:00 next day: quiet at night is expected


def test_new_term_goes_on_through_a_redis_outage_and_writes_what_it_learned_when_redis_returns(
        tmp_path: Path) -> None:
    """#14: a real redis-server of the test's own, stopped while the rule learns and started again:
    no error reaches the rule, what it learned meanwhile is written once Redis answers, the
    outage and the recovery are logged once each."""
    import dataclasses
    import time as clock

    import redis
    from structlog.testing import capture_logs

    from logwarden import outage as outage_module
    from logwarden.rules.terms import STARTED, RedisTermStore
    from tests.fakes import OwnRedis

    server = OwnRedis(tmp_path)
    server.start()
    client = redis.Redis(port=server.port, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True)
    store = RedisTermStore(client, "lwtest:")
    rule = dataclasses.replace(rule_of("new_term"), store=store)
    key = "lwtest:terms:r-new_term:bob"
    try:
        with capture_logs() as logs:
            assert alerts_of(rule, [e(0, 1)]) == []  # Redis up: written through
            assert client.hgetall(key) == {"10.0.0.1": e(0, 1).id, STARTED: e(0, 1).timestamp.isoformat()}
            server.stop()
            during = [e(60, 2, **{"source.ip": "10.0.0.2"}), e(120, 3, **{"source.ip": "10.0.0.3"})]
            assert alerts_of(rule, during) == []  # Redis away: the rule goes on from its own state
            assert store.waiting >= 2
            server.start()
            clock.sleep(outage_module.RETRY_SECONDS + 0.05)  # the store tries Redis again once a second
            assert alerts_of(rule, [e(180, 4, **{"source.ip": "10.0.0.2"})]) == []
        stored = client.hgetall(key)
        assert {"10.0.0.2": during[0].id, "10.0.0.3": during[1].id}.items() <= stored.items()
        assert store.waiting == 0
        events = [entry["event"] for entry in logs]
        assert events.count("redis_outage") == 1 and events.count("redis_back") == 1, events
    finally:
        server.stop()

"""The noise budget: each detector opens so many new incidents a UTC day; the rest of its day's
new alerts fold into one over-budget incident. Against the in-memory backend and the real Redis,
and the real slack_sdk client against the local fake Slack Web API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client import generate_latest

from logwarden.alerts import Alert
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.dispatch import Dispatcher, DispatchPolicy
from logwarden.incidents.model import tally, top_entities
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.setup import MODEL_RULE_ID, noise_budget
from logwarden.incidents.store import IncidentPolicy, IncidentStore, NoiseBudget, OverBudget
from logwarden.metrics import Metrics, parse_exposition
from logwarden.notify.slack import SlackBot, build_slack_blocks
from logwarden.rules.evaluate import evaluate
from logwarden.rules.loader import RuleLoadError, load_rules
from logwarden.settings import Settings
from tests.fakes import TOKEN, FakeSlack, redis_prefix, redis_url, slack, store_on  # noqa: F401 - fixtures
from tests.rulekit import DEFAULT_PACK, ev

ROOT = Path(__file__).resolve().parents[1]
DAY1 = datetime(2026, 11, 24, 10, tzinfo=UTC)
DAY2 = datetime(2026, 11, 25, 10, tzinfo=UTC)
BUDGETS = NoiseBudget(default=None, rules={"noisy": 3, "critical-rule": None, "pair": 2})


def alert(k: int, entity: str | None = None, rule: str = "noisy", day: datetime = DAY1, rev: int = 0,
          count: int = 5, aid: str | None = None) -> Alert:
    start = day + timedelta(minutes=k)
    return Alert(aid or f"{rule}-{start:%d}-{k}", rule, "medium", entity or f"198.51.100.{k}", start,
                 start + timedelta(minutes=1), count, f"{count} not-found answers", [f"access.log:{k}"],
                 ["attack:T1595.003"], rev, "Burst of not-found answers")


def make_store(kind: str, request: pytest.FixtureRequest, budget: NoiseBudget = BUDGETS) -> IncidentStore:
    return store_on(kind, request, IncidentPolicy(budget=budget))  # type: ignore[no-any-return]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[IncidentStore]:
    yield make_store(request.param, request)


def batches(alerts: list[Alert], size: int) -> Iterator[list[Alert]]:
    for i in range(0, len(alerts), size):
        yield alerts[i:i + size]


def snapshot(store: IncidentStore) -> list[tuple[str, str, int, int, str]]:
    return sorted((i.id, i.entity, i.count, i.version, i.summary) for i in store.list())


def over_budget(store: IncidentStore, day: str = "2026-11-24") -> list:
    return [i for i in store.list() if i.entity == f"over-budget:{day}"]


# -- the store --------------------------------------------------------------------------------

def test_past_its_budget_a_rules_new_alerts_fold_into_one_incident_a_day(store: IncidentStore) -> None:
    day1 = [alert(k) for k in range(50)]
    for batch in batches(day1, 7):  # across batches: the day's counter is kept in the backend
        store.apply(batch)
    incidents = store.list()
    ordinary = sorted(i.entity for i in incidents if not i.entity.startswith("over-budget:"))
    assert ordinary == ["198.51.100.0", "198.51.100.1", "198.51.100.2"]  # the first three, in event time
    [ob] = over_budget(store)
    assert len(incidents) == 4 and ob.count == 47 and ob.fingerprint == "noisy|over-budget:2026-11-24"
    assert (ob.rule_id, ob.severity, ob.state) == ("noisy", "medium", "open")
    assert (ob.first_seen, ob.last_seen) == ("2026-11-24T10:03:00Z", "2026-11-24T10:50:00Z")
    assert ob.summary == ("47 alerts of noisy over its budget of 3 new incidents on 2026-11-24; top: "
                          "198.51.100.10 (1), 198.51.100.11 (1), 198.51.100.12 (1), 198.51.100.13 (1), "
                          "198.51.100.14 (1), ...")  # a tie: by name
    # More alerts of folded entities: counted per entity, the summary's top follows.
    store.apply([alert(100 + n, "198.51.100.40") for n in range(3)] + [alert(110 + n, "198.51.100.7")
                                                                       for n in range(2)])
    [ob] = over_budget(store)
    assert ob.count == 52 and ob.summary.endswith("top: 198.51.100.40 (4), 198.51.100.7 (3), 198.51.100.10 (1), "
                                                  "198.51.100.11 (1), 198.51.100.12 (1), ...")
    shown = ob.public()["over_budget"]
    assert shown["day"] == "2026-11-24" and shown["alerts_folded"] == 52 and shown["top_entities"][0] == [
        "198.51.100.40", 4]
    # Another day, its own budget (its alerts' event time decides the day, not the clock).
    store.apply([alert(k, f"203.0.113.{k}", day=DAY2) for k in range(10)])
    assert len([i for i in store.list() if i.first_seen.startswith("2026-11-25")]) == 4
    [ob2] = over_budget(store, "2026-11-25")
    assert ob2.count == 7 and ob2.id != ob.id
    assert store.budget_report() == [OverBudget("noisy", "2026-11-24", 3, 52, ob.id),
                                     OverBudget("noisy", "2026-11-25", 3, 7, ob2.id)]


def test_a_rerun_over_the_same_alerts_opens_and_folds_nothing(store: IncidentStore) -> None:
    day1 = [alert(k) for k in range(50)]
    store.apply(day1)
    before, outbox = snapshot(store), store.outbox()
    for size in (50, 9, 1):  # the same alerts again, however they are batched
        for batch in batches(day1, size):
            assert store.apply(batch) == []
    # Later revisions of folded alerts: the over-budget incident counts alerts, not revisions.
    assert store.apply([alert(k, rev=1, count=9) for k in range(3, 50)]) == []
    assert snapshot(store) == before and store.outbox() == outbox
    assert len(store.list()) == 4 and store.budget_report()[0].folded == 47


def test_budget_null_opts_out(store: IncidentStore) -> None:
    store.apply([alert(k, rule="critical-rule") for k in range(50)])
    store.apply([alert(k, rule="unlisted", entity=f"198.51.101.{k}") for k in range(20)])  # no default: no limit
    assert len(store.list(rule="critical-rule")) == 50 and len(store.list(rule="unlisted")) == 20
    assert store.budget_report() == []


def test_updates_of_open_incidents_are_not_counted_nor_held_back(store: IncidentStore) -> None:
    entity = "192.0.2.1"
    [first] = store.apply([alert(0, entity, rule="pair", aid="burst-1")])
    for rev in range(1, 6):  # the same alert growing
        store.apply([alert(0, entity, rule="pair", aid="burst-1", rev=rev, count=5 + rev)])
    store.apply([alert(30, entity, rule="pair", aid="burst-2", count=4)])  # a new burst, same incident
    assert [i.id for i in store.list()] == [first.id]
    store.apply([alert(40, "192.0.2.2", rule="pair")])  # the budget's second incident
    store.apply([alert(50, "192.0.2.3", rule="pair")])  # the third: folded
    [ob] = over_budget(store)
    assert ob.count == 1 and len(store.list()) == 3
    # Over budget, an open incident still takes its alerts.
    store.apply([alert(60, entity, rule="pair", aid="burst-3", count=7)])
    assert store.get(first.id).count == 10 + 4 + 7  # type: ignore[union-attr]
    assert over_budget(store)[0].count == 1


def test_a_resolved_over_budget_incident_reopens_one_a_day(store: IncidentStore) -> None:
    store.apply([alert(k, rule="pair") for k in range(5)])
    [ob] = over_budget(store)
    store.resolve(ob.id, "alice", "looked: a crawler")
    store.apply([alert(k, rule="pair") for k in range(5, 9)])
    [again] = over_budget(store)
    assert (again.id, again.state, again.count) == (ob.id, "open", 7)
    assert [h["action"] for h in again.history] == ["opened", "resolved", "reopened"]
    assert [p["kind"] for p in again.pending][-1] == "reopened" and ob.id in store.outbox()
    assert store.budget_report() == [OverBudget("pair", "2026-11-24", 2, 7, ob.id)]


def test_a_silence_of_the_rule_silences_its_over_budget_incident(store: IncidentStore) -> None:
    store.add_silence("rule", "noisy", timedelta(hours=2), "bob", "known crawler storm")
    store.apply([alert(k) for k in range(10)])
    [ob] = over_budget(store)
    assert ob.silenced_by is not None and store.outbox() == []


def test_two_stores_on_one_prefix_count_together(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    def new_store() -> IncidentStore:
        return IncidentStore(RedisBackend.from_url(redis_url, redis_prefix), IncidentPolicy(budget=BUDGETS))

    a, b = new_store(), new_store()
    day1 = [alert(k) for k in range(50)]
    for k, x in enumerate(day1[:20]):  # taking turns
        (a if k % 2 else b).apply([x])
    # and at the same time, each a half of the rest
    threads = [threading.Thread(target=lambda s=s, part=part: [s.apply([x]) for x in part])
               for s, part in ((a, day1[20::2]), (b, day1[21::2]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    restarted = new_store()
    assert len(restarted.list()) == 4
    assert [(r.folded, r.budget) for r in restarted.budget_report()] == [(47, 3)]
    assert restarted.apply(day1) == []  # a restart replaying the day opens nothing
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(f"{redis_prefix}budget:2026-11-24:noisy")
    assert client.get(f"{redis_prefix}budget:2026-11-24:noisy") == b"3" and 2.9 * 86400_000 < ttl <= 3 * 86400_000


def test_the_entity_tally_is_bounded_and_keeps_the_heaviest() -> None:
    counts: dict[str, int] = {}
    for k in range(1000):
        tally(counts, f"scan-{k}", limit=50)
        if k % 10 == 0:
            tally(counts, "heavy", limit=50)
    assert len(counts) == 50 and top_entities(counts, 1) == [("heavy", 100)]


# -- configuration ----------------------------------------------------------------------------

RULES = """rules:
  - id: with-budget
    type: match
    description: d
    severity: low
    group_by: source.ip
    where: {field: event.action, equals: probe}
    budget: 5
  - id: no-limit
    type: match
    description: d
    severity: critical
    group_by: source.ip
    where: {field: event.action, equals: probe}
    budget: null
  - id: spelled-none
    type: match
    description: d
    severity: critical
    group_by: source.ip
    where: {field: event.action, equals: probe}
    budget: none
  - id: on-default
    type: match
    description: d
    severity: low
    group_by: source.ip
    where: {field: event.action, equals: probe}
"""


def test_budgets_from_rules_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules = load_rules([path])
    assert {r.meta.id: r.meta.budget for r in rules.rules} == {
        "with-budget": 5, "no-limit": None, "spelled-none": None, "on-default": "default"}
    budget = noise_budget(Settings(rule_budget=10, model_budget=4), rules)
    assert [budget.of(r) for r in ("with-budget", "no-limit", "spelled-none", "on-default", "anything")] == [
        5, None, None, 10, 10]
    assert budget.of(MODEL_RULE_ID) == 4
    from logwarden.anomaly.model import RULE_ID

    assert MODEL_RULE_ID == RULE_ID
    assert Settings().rule_budget == 10 and Settings().model_budget == 5
    assert Settings(rule_budget="none").rule_budget is None  # type: ignore[arg-type]


def test_every_critical_rule_of_the_pack_opts_out() -> None:
    for rule in load_rules([DEFAULT_PACK]).rules:
        assert (rule.meta.budget is None) == (rule.meta.severity == "critical"), rule.meta.id


@pytest.mark.parametrize(("value", "line"), [("-1", 8), ('"x"', 8), ("true", 8), ("2.5", 8)])
def test_a_bad_budget_is_a_load_error_with_file_and_line(tmp_path: Path, value: str, line: int) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(RULES.replace("budget: 5", f"budget: {value}"))
    with pytest.raises(RuleLoadError) as err:
        load_rules([path])
    assert err.value.problems == [f"{path}:{line} with-budget: 'budget' is a number of new incidents a day "
                                  f"(0 or more), or null for no limit, not {orjson.loads(value)!r}"]


def test_budget_is_overridable(tmp_path: Path) -> None:
    local = tmp_path / "local.yaml"
    local.write_text("overrides:\n"
                     "  - {id: web-404-burst, budget: 50}\n"
                     "  - {id: cloudtrail-logging-disabled, budget: 3}\n"
                     "  - id: sqli-or-traversal\n    budget: null\n")
    by_id = {r.meta.id: r.meta.budget for r in load_rules([DEFAULT_PACK, local]).rules}
    assert (by_id["web-404-burst"], by_id["cloudtrail-logging-disabled"], by_id["sqli-or-traversal"]) == (50, 3, None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("overrides:\n  - id: web-404-burst\n    budget: -3\n")
    with pytest.raises(RuleLoadError, match=r"bad\.yaml:3 web-404-burst: 'budget' is a number"):
        load_rules([DEFAULT_PACK, bad])


# -- reporting --------------------------------------------------------------------------------

def test_report_metrics_and_printout() -> None:
    from logwarden.app import print_budget

    store = IncidentStore(MemoryBackend(), IncidentPolicy(budget=BUDGETS))
    metrics = Metrics()
    for batch in batches([alert(k) for k in range(50)], 10):
        metrics.incident_changes(store.apply(batch))
    metrics.incident_changes(store.apply([alert(k) for k in range(50)]))  # a rerun: nothing more
    values = parse_exposition(generate_latest(metrics.registry).decode())
    assert values['logwarden_over_budget_alerts_total{rule="noisy"}'] == 47
    lines: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            lines.append(s)

    print_budget(store, Out())
    [ob] = over_budget(store)
    assert "".join(lines).strip() == f"over budget: noisy on 2026-11-24: 47 alerts folded into {ob.id} (budget 3)"
    blocks = orjson.dumps(build_slack_blocks(ob)).decode()
    assert "*Alerts folded*\\n47" in blocks and "over its budget of 3 new incidents on 2026-11-24" in blocks


# -- Slack ------------------------------------------------------------------------------------

def test_a_rule_firing_on_every_event_is_one_slack_message(slack: FakeSlack, redis_url: str,  # noqa: F811
                                                           redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {id: every-probe, type: match, description: Any probe, severity: high,\n"
                    "     group_by: source.ip, where: {field: event.action, equals: probe}, budget: 2}\n")
    rules = load_rules([path])
    events = [ev(k * 30, k + 1, "access.log", **{"event.action": "probe", "source.ip": f"10.1.{k // 250}.{k % 250}"})
              for k in range(200)]
    alerts = evaluate(rules.rules, events)
    assert len(alerts) == 200 and len({a.entity for a in alerts}) == 200
    policy = IncidentPolicy(budget=noise_budget(Settings(), rules))
    store = IncidentStore(RedisBackend.from_url(redis_url, redis_prefix), policy)
    d = Dispatcher(store, SlackBot(TOKEN, "#security", slack.api_url, 5), DispatchPolicy(min_interval=0))
    for batch in batches(sorted(alerts, key=lambda a: a.start), 20):
        store.apply(batch)
        d.run_once()
    [ob] = [i for i in store.list() if i.entity.startswith("over-budget:")]
    assert len(store.list()) == 3 and ob.count == 198 and store.outbox() == []

    def naming(method: str) -> list[dict]:
        return [c for c in slack.ok_calls(method) if ob.id in orjson.dumps(c["body"]).decode()]

    assert len(naming("chat.postMessage")) == 1 and len(slack.posts()) == 3  # the two in budget, and this one
    updates = naming("chat.update")
    assert len(updates) == 9 and "*Alerts folded*\\n198" in orjson.dumps(updates[-1]["body"]).decode()


# -- through the command line -----------------------------------------------------------------

def test_run_prints_the_over_budget_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: every-failure, type: match, description: Any failed login, severity: low,\n"
                     "     group_by: source.ip, where: {field: event.outcome, equals: failure}, budget: 2}\n")
    log = tmp_path / "auth.log"
    log.write_text("".join(f"Nov 24 10:00:{k:02d} h sshd[1]: Failed password for root from 192.0.2.{k + 1} "
                           f"port {k} ssh2\n" for k in range(20)))
    env = {k: v for k, v in os.environ.items() if k not in ("LOGWARDEN_REDIS_URL", "LOGWARDEN_RULE_BUDGET")}
    env.update(LOGWARDEN_MODEL_ENABLED="false", LOGWARDEN_SYSLOG_YEAR="2026")
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log), "--rules", str(rules)],
                          env=env, capture_output=True, text=True, cwd=ROOT, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("over budget:")]
    assert line.startswith("over budget: every-failure on 2026-11-24: 18 alerts folded into INC-")
    assert line.endswith(" (budget 2)")
    assert "over-budget:2026-11-24" in proc.stdout  # its row in the incident table

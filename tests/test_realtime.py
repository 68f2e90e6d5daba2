"""Real time by default: in a live run, rules whose condition can only become true as events
arrive (match, threshold, distinct count) fire on the event that completes them, whatever the
allowed lateness; the watermark's fold stays the authority and only adds revisions. Each source
has its own allowed lateness and learns its disorder; sequences fire once that learned watermark
passes. Replays are unchanged (tests/test_flow.py, tests/test_streaming.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson

from logwarden.rules.engine import KeyEngine, KeyState
from tests.rulekit import ev, failed, pack_rule

ROOT = Path(__file__).resolve().parents[1]
LIVE = timedelta(minutes=5)  # an allowed lateness sized for CloudTrail's delays
IP = "203.0.113.9"


def feed(engine: KeyEngine, events: list) -> list[list]:
    """One arrival at a time: the alerts told after each."""
    return [engine.on_events([e])[0] for e in events]


def logins(n: int, start: int = 0) -> list:
    return [failed(start + k * 2, k + 1, IP, user="alice") for k in range(n)]


def test_a_threshold_fires_on_the_completing_event_not_after_the_lateness() -> None:
    rule = pack_rule("ssh-bruteforce")  # 10 failures within 5 minutes
    engine = KeyEngine(f"source.ip={IP}", [rule], LIVE)
    told = feed(engine, logins(12))
    assert [len(t) for t in told] == [0] * 9 + [1, 0, 0]  # the 10th failure, at once
    first = told[9][0]
    assert (first.revision, first.count) == (0, 10)
    final = engine.flush()  # the fold, at the end: the same alert, two more events
    assert [(a.alert_id, a.revision, a.count) for a in final] == [(first.alert_id, 1, 12)]
    replay = KeyEngine(f"source.ip={IP}", [rule], None)
    replay.on_events(logins(12))
    opened, exact = replay.flush()  # a replay: the burst opened, then its final update
    assert (opened.alert_id, opened.count) == (first.alert_id, 10)  # the same alert, told at the same event
    assert (exact.alert_id, exact.count, exact.start, exact.end) == (first.alert_id, 12, final[0].start,
                                                                      final[0].end)


def test_an_event_arriving_out_of_order_updates_the_alert_already_told() -> None:
    rule = pack_rule("ssh-bruteforce")
    engine = KeyEngine(f"source.ip={IP}", [rule], LIVE)
    events = logins(11)
    told = [a for t in feed(engine, events[1:]) for a in t]  # the earliest is held up in transit
    [early] = told
    assert early.count == 10 and early.start == events[1].timestamp
    assert engine.on_events([events[0]]) == ([], [])  # within the lateness: no new alert, no violation
    updates = engine.flush()  # the fold's view: the burst began one event earlier, and has 11
    assert {a.alert_id for a in updates} == {early.alert_id}  # under the id told, never a second alert
    assert [a.revision for a in updates] == list(range(1, len(updates) + 1))
    assert (updates[-1].count, updates[-1].start) == (11, events[0].timestamp)


def test_a_match_rule_fires_on_arrival_and_repeats_update_it() -> None:
    rule = pack_rule("sudo-read-shadow")
    sudo = {"event.action": "sudo_command", "process.command_line": "/bin/cat /etc/shadow", "user.name": "mallory"}
    engine = KeyEngine("user.name=mallory", [rule], LIVE)
    first, second = feed(engine, [ev(0, 1, "auth.log", **sudo), ev(30, 2, "auth.log", **sudo)])
    assert len(first) == 1 and second == []
    [update] = engine.flush()
    assert (update.alert_id, update.revision, update.count) == (first[0].alert_id, 1, 2)


def test_an_order_sensitive_sequence_waits_for_the_watermark() -> None:
    rule = pack_rule("ssh-bruteforce-then-success")
    engine = KeyEngine(f"source.ip={IP}", [rule], LIVE)
    events = [failed(k * 5, k, IP, user="bob") for k in range(6)]
    success = failed(40, 7, IP, user="bob")
    success.outcome = "success"
    assert [a for t in feed(engine, [*events, success]) for a in t] == []  # held: order matters
    later = failed(40 + LIVE.total_seconds() + 1, 8, IP, user="carol")
    [fired] = engine.on_events([later])[0]  # the watermark passed the success: now, and only now
    assert fired.rule_id == "ssh-bruteforce-then-success" and fired.related == ["bob"]


def test_what_was_told_survives_a_snapshot_and_old_snapshots_still_load() -> None:
    import pickle

    rule = pack_rule("ssh-bruteforce")
    engine = KeyEngine(f"source.ip={IP}", [rule], LIVE)
    feed(engine, logins(11))
    restored = KeyEngine(f"source.ip={IP}", [rule], LIVE, pickle.loads(pickle.dumps(engine.state)))
    [final] = restored.flush()
    assert (final.revision, final.count) == (1, 11)  # the alert told before the restart is not told again
    old = KeyState("k")
    del old.__dict__["told"], old.__dict__["ahead"]  # as a snapshot written before early firing
    assert pickle.loads(pickle.dumps(old)).told == {}


def test_following_a_tailed_sshd_log_alerts_within_seconds_with_default_settings(tmp_path: Path) -> None:
    log, alerts = tmp_path / "auth.log", tmp_path / "alerts.jsonl"
    log.write_text("Nov 29 10:00:00 web1 sshd[100]: Accepted publickey for alice from 10.0.0.5 port 50000 ssh2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}  # the defaults
    env["LOGWARDEN_SYSLOG_YEAR"] = "2026"
    err = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "--input", str(log), "--follow",
                             "--alerts", str(alerts)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        time.sleep(5)  # the run is up and following (it starts in about two seconds)
        with log.open("a") as f:  # 40 failed logins for a real account over two seconds
            for k in range(40):
                f.write(f"Nov 29 10:01:{k // 20:02d} web1 sshd[{200 + k}]: Failed password for bob from {IP} "
                        f"port {51000 + k} ssh2\n")
                f.flush()
                time.sleep(0.05)
        appended = time.monotonic()
        fired = None
        while time.monotonic() < appended + 30 and fired is None:
            if alerts.exists():
                fired = next((orjson.loads(line) for line in alerts.read_bytes().splitlines()
                              if b'"ssh-bruteforce"' in line), None)
            time.sleep(0.1)
        waited = time.monotonic() - appended
    finally:
        proc.terminate()  # SIGTERM, as docker stop and Kubernetes send: an orderly stop
        code = proc.wait(timeout=60)
        err.close()
    assert fired is not None and fired["entity"] == IP and fired["count"] >= 10
    assert waited < 5, waited  # not the 5-minute lateness: the event that completed it fired it
    text = (tmp_path / "stderr.txt").read_text()
    assert code == 0, text
    assert "stop_requested" in text and "flow_stopped" in text  # it drained and said so
    assert "panicked" not in text and "Traceback" not in text


# -- lateness per source ------------------------------------------------------------------------

def test_a_source_learns_its_disorder_within_its_allowed_lateness() -> None:
    from logwarden.lateness import SourceClock

    clock = SourceClock(timedelta(minutes=10))  # CloudTrail's default
    t = failed(0, 1).timestamp
    assert t is not None
    for k in range(30):  # in order: the watermark follows one second behind
        assert clock.late(t + timedelta(seconds=k)) is None
    assert clock.learned == timedelta(seconds=1)
    assert clock.late(t) is None  # 29 s behind: accepted, and learned (with a margin)
    assert clock.learned == timedelta(seconds=58)
    assert clock.late(t + timedelta(seconds=29) - timedelta(minutes=4)) is None  # 4 minutes late: still fine
    assert clock.learned == timedelta(minutes=8)
    assert clock.late(t + timedelta(seconds=29) - timedelta(minutes=11)) == timedelta(minutes=1)  # past the bound
    assert clock.learned == timedelta(minutes=8)  # a late event teaches nothing
    for k in range(1, 13):  # twelve calm minutes: the disorder is forgotten
        clock.late(t + timedelta(minutes=k, seconds=29))
    assert clock.learned == timedelta(seconds=1)
    assert SourceClock(timedelta(seconds=30)).learned == timedelta(seconds=1)
    assert SourceClock(timedelta(0)).learned == timedelta(0)  # never above the bound


def _trail_engine(rule_id: str, key: str) -> tuple[KeyEngine, object]:
    from logwarden.lateness import SourceClock

    return KeyEngine(key, [pack_rule(rule_id)], LIVE), SourceClock(timedelta(minutes=10))


def _arrive(engine: KeyEngine, clock, events: list) -> list:
    """Events of one source, as the flow's standard step passes them: checked against the
    source's own lateness, then with its mark."""
    told = []
    for e in events:
        assert clock.late(e.timestamp) is None
        told += engine.on_events([e], [clock.mark("trail.json")])[0]
    return told


def test_a_sequence_fires_once_its_sources_learned_watermark_passes_and_only_then() -> None:
    engine, clock = _trail_engine("ssh-bruteforce-then-success", f"source.ip={IP}")
    events = [failed(k * 5, k, IP, user="bob") for k in range(6)]
    success = failed(40, 7, IP, user="bob")
    success.outcome = "success"
    assert _arrive(engine, clock, [*events, success]) == []  # order matters: held
    assert _arrive(engine, clock, [failed(40.5, 8, IP, user="carol")]) == []  # the watermark: 39.5 s
    [fired] = _arrive(engine, clock, [failed(41.5, 9, IP, user="carol")])  # 40.5 s: passed the success
    assert fired.rule_id == "ssh-bruteforce-then-success" and fired.related == ["bob"] and fired.count == 6
    assert len(engine.state.buffer) == 9  # the allowed lateness (10 minutes) has not passed: fired ahead
    assert [a for a in engine.flush() if a.alert_id != fired.alert_id or a.revision == 0] == []  # not told twice


def test_an_event_late_within_the_allowed_lateness_still_counts_for_an_order_sensitive_rule() -> None:
    engine, clock = _trail_engine("ssh-bruteforce-then-success", f"source.ip={IP}")
    fails = [failed(k * 5, k, IP, user="bob") for k in range(5)]
    success = failed(40, 7, IP, user="bob")
    success.outcome = "success"
    later = [failed(60 + k, 20 + k, IP, user="carol") for k in range(5)]  # carol fails too, then nothing
    assert _arrive(engine, clock, [*fails[1:], success, *later]) == []  # four failures: not yet a sequence
    assert _arrive(engine, clock, [fails[0]]) == []  # the fifth failure, 64 s late: accepted, and learned
    assert clock.learned == timedelta(seconds=128)  # so the watermark now waits 128 s behind the newest
    assert _arrive(engine, clock, [failed(167, 30, IP, user="dave")]) == []  # 39 s: not past the success
    [fired] = _arrive(engine, clock, [failed(169, 31, IP, user="dave")])  # 41 s: the sequence, whole
    assert fired.count == 6 and fired.start == fails[0].timestamp
    replay = KeyEngine(f"source.ip={IP}", engine.rules, None)
    replay.on_events([*fails, success, *later])
    [exact] = replay.flush()
    assert (exact.alert_id, exact.count) == (fired.alert_id, fired.count)  # as a replay finds it


def test_with_the_defaults_a_cloudtrail_record_four_minutes_late_counts_and_a_late_sshd_line_does_not(
        tmp_path: Path) -> None:
    import random

    from bytewax.testing import TestingSink, run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.lateness import LatenessPolicy
    from logwarden.parsers import ParserOptions
    from logwarden.rules.loader import load_rules
    from logwarden.simulate import _trail
    from logwarden.sources import resolve_inputs
    from logwarden.sources.bytewax.files import LogFileSource
    from logwarden.standard import load_profile
    from tests.rulekit import T0

    rng = random.Random(7)

    def login(minute: float, outcome: str) -> dict:
        record = _trail(T0 + timedelta(minutes=minute), "ConsoleLogin", "mallory", "198.51.100.23", rng)
        record["responseElements"] = {"ConsoleLogin": outcome}
        return record

    fails = [login(k * 0.5, "Failure") for k in range(3)]
    records = [fails[0], fails[2], login(2, "Success")]  # the second failure is held up in delivery ...
    records += [_trail(T0 + timedelta(minutes=2 + k / 4), "ListBuckets", "ops", "10.0.0.7", rng) for k in range(11)]
    records.append(fails[1])  # ... and arrives 4 minutes behind the trail's newest record
    trail = tmp_path / "trail.json"
    trail.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    auth = tmp_path / "auth.log"
    auth.write_text("".join(f"Nov 25 10:{m:02d}:00 web1 sshd[{m}]: Accepted publickey for ops from 10.0.0.8 port "
                            f"{5000 + m} ssh2\n" for m in (0, 5, 1)))  # the last one 4 minutes behind its source
    options = ParserOptions(syslog_year=2026)
    policy = LatenessPolicy()  # the defaults: CloudTrail 10 minutes, syslog 1 second
    config = FlowConfig(profile=load_profile(), parser_options=options,
                        rules=load_rules([ROOT / "rules" / "default.yaml"]).enabled(),
                        allowed_lateness=policy.ceiling(["cloudtrail", "syslog"], []), lateness=policy)
    out: dict[str, list] = {"alerts": [], "violations": [], "scorecards": []}
    source = LogFileSource(resolve_inputs([str(trail), str(auth)], None, options), 1)  # one line per batch
    run_main(build_flow(config, source, Sinks(*([TestingSink(out[k])] for k in ("alerts", "violations",
                                                                                   "scorecards")))))
    late = [v for _, v in out["violations"] if v.reason == "late_event"]
    assert [(v.source, v.line) for v in late] == [(str(auth), 3)]  # the sshd line, beyond its 1 s
    fired = [a for _, a in out["alerts"] if a.rule_id == "console-bruteforce-then-success"]
    assert fired and fired[0].count == 4 and fired[0].start == T0  # the late failure counted in the sequence
    cards = {c.source: c for _, c in out["scorecards"]}
    assert (cards[str(trail)].allowed_lateness, cards[str(auth)].allowed_lateness) == (600.0, 1.0)
    assert cards[str(trail)].watermark_delay == 480.0  # it learned the trail's disorder (4 minutes, doubled)


def test_an_inputs_own_lateness_wins_and_is_given_one_per_input(tmp_path: Path) -> None:
    from bytewax.testing import TestingSink, run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.app import build_sources, lateness_policy
    from logwarden.parsers import ParserOptions
    from logwarden.settings import Settings
    from logwarden.standard import load_profile

    auth = tmp_path / "auth.log"
    auth.write_text("".join(f"Nov 25 10:{m:02d}:00 web1 sshd[{m}]: Accepted publickey for ops from 10.0.0.8 port "
                            f"{5000 + m} ssh2\n" for m in (0, 5, 1)))
    settings = Settings(syslog_year=2026, batch_size=1, source_lateness={"cloudtrail": "20m"})
    options = ParserOptions(syslog_year=2026)
    sources, _, own = build_sources(settings, [str(auth)], None, options, False, {str(auth): timedelta(minutes=10)})
    assert own == [timedelta(minutes=10)]
    policy = lateness_policy(settings)
    assert policy.bound("x", "cloudtrail") == timedelta(minutes=20)
    assert policy.bound("x", "syslog") == timedelta(seconds=1)
    config = FlowConfig(profile=load_profile(), parser_options=options, rules=[],
                        allowed_lateness=timedelta(minutes=10), lateness=policy, input_lateness=tuple(own))
    out: dict[str, list] = {"violations": [], "scorecards": []}
    run_main(build_flow(config, sources, Sinks([], [TestingSink(out["violations"])], [TestingSink(out["scorecards"])])))
    assert [v for _, v in out["violations"] if v.reason == "late_event"] == []  # 4 minutes: within its own 10
    assert [c.allowed_lateness for _, c in out["scorecards"]] == [600.0]
    wrong = subprocess.run([sys.executable, "-m", "logwarden", "run", "-i", str(auth), "-i", str(auth),
                            "--lateness", "30s", "--follow"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                           check=False)
    assert wrong.returncode == 2 and "1 --lateness for 2 --input" in wrong.stderr, wrong.stderr


def test_a_live_chunk_read_as_columns_keeps_what_its_source_takes_and_reports_the_rest() -> None:
    """A live run reads chunks as columns too: each row through its source's clock in line
    order, as event by event; a row beyond the allowed lateness becomes a ``late_event``
    violation, the rest stay rows (built only when something reads them)."""
    from flows.main import _on_time
    from logwarden.event import Event
    from logwarden.lateness import SourceClock
    from logwarden.parsers import ParserOptions, build_parser
    from logwarden.standard import SourceChecker, load_profile
    from tests.conftest import NOW

    lines = [f'10.0.0.{s % 7} - - [26/Nov/2026:11:00:{s:02d} +0000] "GET /{s} HTTP/1.1" 200 5 "-" "curl/8"'
             for s in (10, 12, 5, 13, 11, 2, 14)]  # 5 and 2 arrive more than 2 s behind the newest
    checker = SourceChecker(load_profile(), build_parser("combined", ParserOptions()), "access.log", now=lambda: NOW)
    rows, others = checker.check_batch(lines, 1)
    assert others == [] and len(rows) == 7
    clock, out = SourceClock(timedelta(seconds=2)), []
    kept = _on_time(rows, clock, "access.log", out)
    assert [e.line for e in kept] == [1, 2, 4, 5, 7] and kept[1].url_path == "/12"
    assert [(v.reason, v.line) for v in out] == [("late_event", 3), ("late_event", 6)]
    one_by_one, late = SourceClock(timedelta(seconds=2)), []  # event by event, as before
    for event in [x for x in checker.check_lines(lines, 1) if isinstance(x, Event)]:
        if one_by_one.late(event.timestamp) is not None:  # type: ignore[arg-type]
            late.append(event.line)
    assert late == [3, 6] and (one_by_one.newest, one_by_one.lags) == (clock.newest, clock.lags)

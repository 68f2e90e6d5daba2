"""Real time by default: in a live run, rules whose condition can only become true as events
arrive (match, threshold, distinct count) fire on the event that completes them, whatever the
allowed lateness; the watermark's fold stays the authority and only adds revisions. Replays are
unchanged (tests/test_flow.py, tests/test_streaming.py)."""

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
LIVE = timedelta(minutes=5)  # the default allowed lateness (sized for CloudTrail's delays)
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
    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "--input", str(log), "--follow",
                             "--alerts", str(alerts)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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
        proc.terminate()
        proc.wait(timeout=60)
    assert fired is not None and fired["entity"] == IP and fired["count"] >= 10
    assert waited < 5, waited  # not the 5-minute lateness: the event that completed it fired it

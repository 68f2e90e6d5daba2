"""The Bytewax flow itself: 1 vs 2 workers, secrets never in any output, the CLI contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from bytewax.testing import TestingSink, cluster_main, run_main

from flows.main import FlowConfig, Sinks, build_flow
from logwarden.parsers import ParserOptions
from logwarden.rules.loader import load_rules
from logwarden.simulate import SECRETS
from logwarden.sources import resolve_inputs
from logwarden.sources.bytewax.files import LogFileSource
from logwarden.standard import load_profile
from tests.conftest import sim_inputs

ROOT = Path(__file__).resolve().parents[1]


def _run(sim: Path, workers: int, batch_size: int = 200) -> dict[str, list[dict]]:
    options = ParserOptions()
    config = FlowConfig(profile=load_profile(), parser_options=options,
                        rules=load_rules([ROOT / "rules" / "default.yaml"]).enabled())
    out: dict[str, list] = {"alerts": [], "violations": [], "scorecards": []}
    source = LogFileSource(resolve_inputs(sim_inputs(sim), None, options), batch_size)
    flow = build_flow(config, source, Sinks(*(
        [TestingSink(out[name])] for name in ("alerts", "violations", "scorecards"))))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {name: sorted((v.to_dict() for _, v in values), key=lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
            for name, values in out.items()}


def test_one_and_two_workers_give_the_same_outputs(sim: Path) -> None:
    one = _run(sim, 1)
    two = _run(sim, 2, batch_size=97)
    assert one == two
    assert one["alerts"] and one["violations"] and len(one["scorecards"]) == 6


def test_planted_violations_and_attacks_are_found(sim: Path) -> None:
    out = _run(sim, 1)
    labels = [orjson.loads(line) for line in (sim / "labels.jsonl").read_text().splitlines()]
    found = {(v["source"], v["line"]): v for v in out["violations"]}
    for label in (lb for lb in labels if lb["type"] == "violation"):
        v = found[(label["source"], label["line"])]
        assert v["reason"] == label["reason"], label
    fired = {(a["rule_id"], a["entity"]) for a in out["alerts"] if not a["rule_id"].startswith("standard.")}
    expected = {(rule, lb["entity"]) for lb in labels if lb["type"] == "attack" for rule in lb["rules"]}
    assert expected - fired == set()  # every planted attack is caught by the rules its label names
    # ... and nothing else fires: the admins' typos, the nightly batch job, the deploy burst,
    # the crawlers, the internet's background, pods changing addresses and the quiet nights
    assert fired - expected == set()
    # the standard's own alerts: the API that wrote secrets and broke the standard, nothing else
    api = next(lb["source"] for lb in labels if lb["type"] == "violation" and "secret" in lb)
    assert {(a["rule_id"], a["entity"]) for a in out["alerts"] if a["rule_id"].startswith("standard.")} == {
        ("standard.secret-in-logs", api), ("standard.compliance-drop", api)}


def test_no_planted_secret_reaches_any_output(sim: Path, tmp_path: Path) -> None:
    alerts, violations, card = tmp_path / "a.jsonl", tmp_path / "v.jsonl", tmp_path / "card.json"
    args = [sys.executable, "-m", "logwarden.cli", "run", "--alerts", str(alerts),
            "--violations", str(violations), "--scorecard", str(card)]
    for path in sim_inputs(sim):
        args += ["--input", path]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, "alerts": alerts.read_text(),
               "violations": violations.read_text(), "scorecard": card.read_text()}
    planted = [orjson.loads(line) for line in (sim / "labels.jsonl").read_text().splitlines()]
    kinds = {lb["secret_kind"] for lb in planted if "secret_kind" in lb}
    assert kinds == set(SECRETS)  # every kind was planted
    for label in (lb for lb in planted if "secret" in lb):
        for name, text in outputs.items():
            assert label["secret"] not in text, f"{label['secret_kind']} leaked into {name}"
        recorded = [v for v in map(orjson.loads, outputs["violations"].splitlines())
                    if (v["source"], v["line"]) == (label["source"], label["line"])]
        assert [v["secret_kinds"] for v in recorded] == [[label["secret_kind"]]]
    assert "ALERT" in proc.stdout and "compliant" in proc.stdout


def test_cli_reads_stdin_with_format_and_rejects_bad_input(tmp_path: Path) -> None:
    lines = "".join(f"Nov 24 10:00:{k:02d} h sshd[1]: Failed password for alice from 192.0.2.1 "
                    f"port 22 ssh2\n" for k in range(12))
    out = tmp_path / "a.jsonl"
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "run", "-i", "-", "--format",
                           "syslog", "--no-model", "--alerts", str(out)], input=lines, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    records = [orjson.loads(x) for x in out.read_text().splitlines()]
    assert {r["entity"] for r in records} == {"192.0.2.1"}
    assert {"alert_id", "rule_id", "severity", "entity", "start", "end", "count", "summary",
            "evidence", "tags"} <= set(records[0])
    for bad, message in ((["-i", "-"], "needs --format"),
                         (["-i", str(tmp_path / "nope.log")], "no such file"),
                         (["-i", str(out), "--format", "nginx9"], "unknown format")):
        proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "run", *bad], input="",
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
        assert proc.returncode == 2 and message in proc.stderr


def test_settings_come_from_the_environment_and_are_validated(tmp_path: Path) -> None:
    env = {**os.environ, "LOGWARDEN_BATCH_SIZE": "0"}
    log = tmp_path / "x.log"
    log.write_text("")
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
                          check=False)
    assert proc.returncode == 2 and "batch_size" in proc.stderr


def test_replaying_files_gives_the_alerts_of_one_time_ordered_merge(sim: Path) -> None:
    """Files are read chunk by chunk, one far ahead of another; the alerts must be those of a
    single time-ordered merge of all their events, evaluated without Bytewax."""
    from logwarden.event import Event
    from logwarden.parsers import build_parser
    from logwarden.rules.evaluate import evaluate
    from logwarden.sources import LineReader
    from logwarden.standard import SourceChecker

    options = ParserOptions()
    events: list[Event] = []
    for path, fmt in resolve_inputs(sim_inputs(sim), None, options):
        checker = SourceChecker(load_profile(), build_parser(fmt, options), path)
        for chunk in LineReader(path, fmt, 1000).chunks():
            events.extend(x for x in checker.check_lines(chunk.lines, chunk.first_line) if isinstance(x, Event))
    events.sort(key=lambda x: (x.timestamp, x.source, x.line))
    merged = evaluate(load_rules([ROOT / "rules" / "default.yaml"]).enabled(), events)
    expected = sorted((a.to_dict() for a in merged), key=lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
    rules_only = [a for a in _run(sim, 1, batch_size=50)["alerts"] if not a["rule_id"].startswith("standard.")]
    assert rules_only == expected


def test_snapshots_round_trip_and_refuse_anything_but_logwarden_state(sim: Path) -> None:
    """Every stateful step's snapshot (live mode, rules and the shipped model) restores to the same
    state; a recovery database entry naming any other callable is refused, never called."""
    import pickle
    from collections import defaultdict
    from datetime import timedelta

    import pytest

    from flows.main import Featured, Routed, _FeatureLogic, _RulesLogic, _StandardLogic, _thaw
    from logwarden.anomaly.model import AnomalyModel
    from logwarden.app import default_model_path
    from logwarden.sources import LineReader

    options = ParserOptions()
    model_path = default_model_path()
    assert model_path is not None
    config = FlowConfig(profile=load_profile(), parser_options=options,
                        rules=load_rules([ROOT / "rules" / "default.yaml"]).enabled(),
                        allowed_lateness=timedelta(minutes=5), model=AnomalyModel.load(model_path))
    logics: list = []
    by_key: dict = defaultdict(list)
    by_principal: dict = defaultdict(list)
    for path, fmt in resolve_inputs(sim_inputs(sim), None, options):
        standard = _StandardLogic(config, None)
        for chunk in LineReader(path, fmt, 500).chunks():
            for item in standard.on_batch([chunk])[0]:
                if type(item) is Routed:
                    by_key[item.key].append(item.value)
                elif type(item) is Featured:
                    by_principal[item.principal].append(item.value)
        logics.append(standard)
    for values in by_key.values():
        logic = _RulesLogic(config, None)
        logic.on_batch(values)
        logics.append(logic)
    for events in by_principal.values():
        logic = _FeatureLogic(config, None)
        logic.on_batch(events)
        logics.append(logic)
    assert {type(lg) for lg in logics} == {_StandardLogic, _RulesLogic, _FeatureLogic} and len(logics) > 50
    for logic in logics:
        snap = logic.snapshot()
        assert isinstance(snap, bytes)
        assert _thaw(type(logic)(config, snap).snapshot()) == _thaw(snap)

    class Foreign:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo should-never-run",))

    with pytest.raises(pickle.UnpicklingError, match="not logwarden state"):
        _thaw(pickle.dumps(Foreign()))
    with pytest.raises(pickle.UnpicklingError, match="not logwarden state"):  # our functions neither
        _thaw(pickle.dumps(load_profile))

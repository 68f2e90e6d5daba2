"""#16 compliance scopes: a simulated organisation's cardholder data, named in the standard
profile by resource and source globs. Its events carry labels.scope; a rule on the field fires
only on them; the trail answers `audit search --scope` and `evidence --scope` with them alone."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
import yaml

from logwarden.parsers import ParserOptions, build_parser
from logwarden.rules.evaluate import evaluate
from logwarden.standard import Profile, SourceChecker, load_profile
from tests.rulekit import rules_from_yaml

ROOT = Path(__file__).resolve().parents[1]
CARDHOLDER = ["payments", "invoices", "customer-exports/*"]


def _profile(tmp_path: Path) -> Path:
    doc = yaml.safe_load((ROOT / "logwarden" / "data" / "standard-default.yaml").read_text())
    doc["scopes"] = {"cardholder-data": {"resources": CARDHOLDER}, "platform": {"sources": ["*/k8s/*"]}}
    path = tmp_path / "standard.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _checked(profile: Profile, path: Path, fmt: str) -> list:
    checker = SourceChecker(profile, build_parser(fmt, ParserOptions()), str(path))
    return [x for x in checker.check_lines(path.read_text().splitlines(), 1) if type(x).__name__ == "Event"]


def test_events_carry_their_scopes_and_a_rule_on_the_field_fires_only_on_them(sim: Path, tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path))
    db = _checked(profile, sim / "db" / "queries.jsonl", "json")
    k8s = _checked(profile, sim / "k8s" / "audit.jsonl", "k8s_audit")
    in_scope = [e for e in db if e.resource in ("payments", "invoices")]
    assert in_scope and len(in_scope) < len(db)
    assert all(e.get("labels.scope") == ["cardholder-data"] for e in in_scope)
    assert all(e.get("labels.scope") is None for e in db if e not in in_scope)
    assert all(e.get("labels.scope") == ["platform"] for e in k8s)  # by source: every event of it
    [rule] = rules_from_yaml("rules:\n  - id: chd-access\n    type: match\n    description: cardholder data read\n"
                             "    severity: low\n    group_by: user.name\n    window: 1s\n"
                             "    where: {field: labels.scope, contains: cardholder-data}\n")
    fired = evaluate([rule], db + k8s)
    told = {ref for a in fired for ref in a.evidence}
    assert fired and told <= {e.id for e in in_scope}  # never on an event out of scope


def test_a_profile_with_a_bad_scope_is_refused(tmp_path: Path) -> None:
    from logwarden.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nscopes:\n  chd:\n    resourcez: [a]\n")
    with pytest.raises(ConfigError, match="resourcez"):
        load_profile(path)


def test_the_trail_answers_for_one_scope_alone(sim: Path, tmp_path: Path) -> None:
    from tests.conftest import sim_inputs

    audit = tmp_path / "audit"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")} | {
        "LOGWARDEN_AUDIT_DIR": str(audit), "LOGWARDEN_AUDIT_KEY": "scope-test-key-0123456789abcdef",
        "LOGWARDEN_STANDARD_PROFILE": str(_profile(tmp_path)), "LOGWARDEN_MODEL_ENABLED": "false"}
    inputs = [x for p in sim_inputs(sim) for x in ("-i", p)]
    card = tmp_path / "scorecard.json"
    run = subprocess.run([sys.executable, "-m", "logwarden", "run", *inputs, "--scorecard", str(card)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    found = subprocess.run([sys.executable, "-m", "logwarden", "audit", "search", "--scope", "cardholder-data",
                            "--class", "events", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert found.returncode == 0, found.stderr
    hits = [orjson.loads(x) for x in found.stdout.splitlines()]
    every = subprocess.run([sys.executable, "-m", "logwarden", "audit", "search", "--class", "events", "--json"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    expected = [r["seq"] for r in map(orjson.loads, every.stdout.splitlines())
                if any(fnmatch.fnmatchcase(str(r["data"].get("resource")), g) for g in CARDHOLDER)]
    assert expected and [h["seq"] for h in hits] == expected  # every event of the scope, and only those
    assert all(h["verified"] for h in hits)
    assert {h["data"]["resource"] for h in hits} >= {"payments", "invoices"}  # database tables and S3 exports
    bundle = tmp_path / "chd.zip"
    done = subprocess.run([sys.executable, "-m", "logwarden", "evidence", "--from", "2000-01-01T00:00:00Z",
                           "--to", "2100-01-01T00:00:00Z", "--scope", "cardholder-data", "--out", str(bundle)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(bundle) as z:
        name = next(n for n in z.namelist() if n.endswith("records/events.jsonl"))
        records = [orjson.loads(x) for x in z.read(name).splitlines()]
    assert len(records) == len(hits)  # the scope alone

    # The scorecard of the scope alone: per source, the scope's records (events and dropped
    # lines) and the compliant ones, as the trail holds them.
    scoped = subprocess.run([sys.executable, "-m", "logwarden", "audit", "search", "--scope", "cardholder-data",
                             "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    everything = [orjson.loads(x) for x in scoped.stdout.splitlines()]
    expect: dict[str, list[int]] = {}
    for r in everything:
        d = r["data"]
        if r["kind"] == "event":
            counts = expect.setdefault(d["log.file.path"], [0, 0])
            counts[0] += 1
            counts[1] += 1
        elif r["kind"] == "violation":
            counts = expect.setdefault(d["source"], [0, 0])
            counts[0] += d["action"] == "dropped"  # a redacted record is an event already counted
            counts[1] -= 1 if d["action"] == "redacted" else 0
    cards = {c["source"]: c["scopes"]["cardholder-data"] for c in orjson.loads(card.read_bytes())
             if "cardholder-data" in c.get("scopes", {})}
    assert {src: [c["records"], c["compliant"]] for src, c in cards.items()} == expect
    shown = subprocess.run([sys.executable, "-m", "logwarden", "scorecard", str(card), "--scope", "cardholder-data"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[3:]]
    assert {row[0] for row in rows[:-1]} == set(expect) and rows[-1][0] == "all"
    assert int(rows[-1][1]) == sum(n for n, _ in expect.values())

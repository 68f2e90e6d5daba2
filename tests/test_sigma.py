"""#15: Sigma rules. Every rule of the SigmaHQ subset in ../shared/data/sigma loads or is
reported with its reason; the converted rules fire, through our parsers and the real engine, on a
line built from their own detection and not on the same line made ordinary; the web rules fire
on the simulator's scanner traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from logwarden.parsers import ParserOptions, build_parser
from logwarden.rules.evaluate import evaluate
from logwarden.rules.loader import RuleLoadError, load_rules, rule_files
from logwarden.rules.sigma import convert_text
from tests.sigmakit import Unsatisfiable, line, negative, positive

ROOT = Path(__file__).resolve().parents[1]
SIGMA = ROOT.parent / "shared" / "data" / "sigma"
FILES = rule_files([SIGMA])


def test_every_sigma_rule_loads_or_says_why() -> None:
    rule_set = load_rules([SIGMA], sigma_partial=True)
    assert len(FILES) == 92
    assert rule_set.sigma == len(rule_set.rules) and len(rule_set.rules) + len(rule_set.not_loaded) == 92
    assert len(rule_set.rules) >= 75
    for entry in rule_set.not_loaded:  # file: title: why
        path, title, why = entry.split(": ", 2)
        assert Path(path) in FILES and title and why
    with pytest.raises(RuleLoadError) as err:  # without --sigma-partial: a problem each, and the hint
        load_rules([SIGMA])
    assert len(err.value.problems) == len(rule_set.not_loaded)
    assert all("--sigma-partial" in p for p in err.value.problems)


def test_rules_validate_lists_what_does_not_load_and_counts() -> None:
    done = subprocess.run([sys.executable, "-m", "logwarden", "rules", "validate", str(SIGMA)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = done.stdout.strip().splitlines()
    rule_set = load_rules([SIGMA], sigma_partial=True)
    assert lines[-1] == f"{len(rule_set.rules)} rules loaded, {len(rule_set.not_loaded)} not loaded"
    assert sum(x.startswith("not loaded: ") for x in lines) == len(rule_set.not_loaded)
    assert done.returncode == 1  # not everything loaded ...
    partial = subprocess.run([sys.executable, "-m", "logwarden", "rules", "validate", "--sigma-partial",
                              str(SIGMA)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert partial.returncode == 0  # ... which --sigma-partial accepts


def _cases() -> list[tuple[Path, str]]:
    out = []
    for path in FILES:
        for title, result in convert_text(path.read_text()):
            if isinstance(result, dict):
                out.append((path, title))
    return out


CASES = _cases()


@pytest.mark.parametrize(("path", "title"), CASES, ids=[p.stem for p, _ in CASES])
def test_a_converted_rule_fires_on_its_own_detection_and_not_on_the_ordinary_line(path: Path, title: str) -> None:
    [rule] = [r for r in load_rules([path]).rules]
    [sigma] = [r for r in SigmaCollection.from_yaml(path.read_text()).rules if r.title == title]
    try:
        source, fields = positive(sigma)
    except Unsatisfiable as exc:
        pytest.skip(f"no line built from its detection: {exc}")
    options = ParserOptions(syslog_year=2026)
    fired = {}
    for name, values in (("positive", fields), ("negative", negative(fields))):
        fmt, text = line(source, values)
        event = build_parser(fmt, options).parse(text, "sample.log", 1)
        fired[name] = [a.rule_id for a in evaluate([rule], [event])]
    assert fired == {"positive": [rule.meta.id], "negative": []}, (line(source, fields), fired)


def test_at_least_twenty_rules_are_proven_on_lines_from_their_own_detection() -> None:
    proven = 0
    for path, title in CASES:
        [sigma] = [r for r in SigmaCollection.from_yaml(path.read_text()).rules if r.title == title]
        try:
            positive(sigma)
            proven += 1
        except Unsatisfiable:
            pass
    assert proven >= 20


def test_the_web_rules_fire_on_the_simulators_scanner_traffic(sim: Path, tmp_path: Path) -> None:
    from tests.conftest import sim_inputs

    web = [SIGMA / "web" / "webserver_generic" / name for name in (
        "web_sql_injection_in_access_logs.yml", "web_path_traversal_exploitation_attempt.yml",
        "web_susp_useragents.yml")]
    rule_set = load_rules(web)
    options = ParserOptions()
    events = []
    for path in sim_inputs(sim):
        if "web" in path:
            parser = build_parser("combined", options)
            events += [parser.parse(text, path, n) for n, text in enumerate(Path(path).read_text().splitlines(), 1)]
    fired = {(a.rule_id, a.entity) for a in evaluate(rule_set.rules, events)}
    scanner = "192.0.2.99"  # the simulator's sqlmap and Nikto scanner
    assert {rid for rid, entity in fired if entity == scanner} == {r.meta.id for r in rule_set.rules}


def test_convert_prints_rules_that_load_as_our_own(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "logwarden", "rules", "convert",
                           str(SIGMA / "cloud" / "aws" / "cloudtrail")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1  # some CloudTrail rules name fields we do not keep: said as comments
    assert "# not converted: " in done.stdout
    out = tmp_path / "converted.yaml"
    out.write_text(done.stdout)
    converted = load_rules([out])
    assert len(converted.rules) == len(load_rules([SIGMA / "cloud" / "aws" / "cloudtrail"], sigma_partial=True).rules)
    assert converted.sigma == 0  # ours now: to review and tune


CORRELATIONS = ROOT / "tests" / "data" / "sigma_correlations.yml"
NATIVE = ROOT / "tests" / "data" / "native_correlations.yaml"


def _pairs() -> dict[str, str]:
    """Sigma correlation rule id -> the native rule written to equal it (same description)."""
    sigma = load_rules([CORRELATIONS]).rules
    native = {r.meta.description: r.meta.id for r in load_rules([NATIVE]).rules}
    assert sorted(r.type for r in sigma) == ["cardinality", "sequence", "temporal", "threshold"]
    return {r.meta.id: native[r.meta.description] for r in sigma}


def _by_rule(alerts: list[dict]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for a in alerts:  # what fired, on which events: everything but the rule's own names
        out.setdefault(a["rule_id"], []).append((a["entity"], a["start"], a["end"], a["count"], a["revision"],
                                                 tuple(a["evidence"])))
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("follow", [False, True], ids=["replay", "follow"])
def test_correlations_fire_exactly_when_their_native_equivalents_do(sim: Path, tmp_path: Path, follow: bool) -> None:
    import os
    import signal
    import time

    import orjson

    from tests.conftest import sim_inputs

    pairs = _pairs()
    alerts = tmp_path / "alerts.jsonl"
    args = [sys.executable, "-m", "logwarden", "run", *[x for p in sim_inputs(sim) for x in ("-i", p)],
            "--rules", str(CORRELATIONS), "--rules", str(NATIVE), "--no-model", "--alerts", str(alerts)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env["LOGWARDEN_CACHE_DIR"] = str(tmp_path / "cache")
    if not follow:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
    else:
        proc = subprocess.Popen([*args, "--follow"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:  # until every rule has told something and nothing has changed for 5 s
            last, since, deadline = -1, time.monotonic(), time.monotonic() + 120
            while time.monotonic() < deadline:
                size = alerts.stat().st_size if alerts.exists() else 0
                if size != last:
                    last, since = size, time.monotonic()
                told = {orjson.loads(x)["rule_id"] for x in alerts.read_bytes().splitlines()} if size else set()
                if told >= set(pairs) | set(pairs.values()) and time.monotonic() - since > 5:
                    break
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
    fired = _by_rule([orjson.loads(x) for x in alerts.read_bytes().splitlines()])
    for sigma_id, native_id in pairs.items():
        assert fired.get(native_id), native_id  # each pair fires on the simulator's day ...
        assert fired.get(sigma_id) == fired[native_id], sigma_id  # ... on the same events, the same way


def test_a_users_pipeline_maps_a_field_of_their_own(tmp_path: Path) -> None:
    """LOGWARDEN_SIGMA_PIPELINES: a pySigma pipeline of the user's, after the shipped one."""
    rule = tmp_path / "tenant.yml"
    rule.write_text("title: Requests for the staging tenant\nlogsource:\n  category: webserver\n"
                    "detection:\n  selection:\n    x-tenant: staging\n  condition: selection\nlevel: low\n")
    with pytest.raises(RuleLoadError, match=r"field 'x-tenant' .* is not one logwarden's parsers keep"):
        load_rules([rule])
    pipeline = tmp_path / "ours.yml"
    pipeline.write_text("name: ours\npriority: 30\ntransformations:\n  - type: field_name_mapping\n"
                        "    mapping:\n      x-tenant: labels.tenant\n")
    [loaded] = load_rules([rule], sigma_pipelines=[pipeline]).rules
    from logwarden.event import Event

    event = Event.from_ecs({"@timestamp": "2026-11-29T10:00:00Z", "http.request.method": "GET", "source.ip": "10.1.2.3",
                            "labels.tenant": "Staging"}, source="gw", line=1)
    assert [a.rule_id for a in evaluate([loaded], [event])] == [loaded.meta.id]  # Sigma: case-insensitive
    done = subprocess.run([sys.executable, "-m", "logwarden", "rules", "validate", str(rule)], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "LOGWARDEN_SIGMA_PIPELINES": f'["{pipeline}"]'},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("1 rules loaded, 0 not loaded"), done.stdout


def test_conversions_are_kept_and_reused_and_a_changed_rule_is_converted_anew(tmp_path: Path) -> None:
    from logwarden.rules import sigma

    web = SIGMA / "web" / "webserver_generic"
    items = [(p, p.read_text()) for p in sorted(web.glob("*.yml"))]
    first = sigma.convert_texts(items, cache=tmp_path)
    [kept] = list(tmp_path.glob("*.json"))
    again = sigma.convert_texts(items, cache=tmp_path)
    assert [(p, t, str(r)) for p, t, r in again] == [(p, t, str(r)) for p, t, r in first]
    assert [type(r) for _, _, r in again] == [type(r) for _, _, r in first]  # reasons stay reasons
    changed = [(items[0][0], items[0][1] + "\n# tuned\n"), *items[1:]]
    sigma.convert_texts(changed, cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2 and kept.exists()
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    assert len(sigma.convert_texts(items, cache=unwritable / "sub")) == len(first)  # no cache: still converts


def test_a_run_converts_sigma_in_another_process_while_it_starts(tmp_path: Path) -> None:
    """Not cached yet: another process converts into the cache while the run loads its model, and
    the rules loaded from it are those converted here; a run with no cache uses a directory of
    its own and removes it; once cached, nothing is started."""
    import os

    from logwarden.app import load_rule_set, start_sigma
    from logwarden.settings import Settings

    rules = [ROOT / "rules" / "default.yaml", SIGMA / "web"]
    settings = Settings(rules=rules, sigma_partial=True, cache_dir=tmp_path / "cache")
    started = start_sigma(settings)
    assert started is not None and started.process.pid != os.getpid() and started.temporary is None
    loaded = load_rule_set(settings, started)
    assert started.process.returncode == 0 and list((tmp_path / "cache" / "sigma").glob("*.json"))
    here = load_rules(rules, sigma_partial=True)  # converted in this process
    assert [r.meta for r in loaded.rules] == [r.meta for r in here.rules] and loaded.sigma == here.sigma >= 13
    assert start_sigma(settings) is None  # cached: nothing to do beside the start
    uncached = Settings(rules=rules, sigma_partial=True, cache_dir=None)
    own = start_sigma(uncached)
    assert own is not None and own.temporary is not None
    assert [r.meta for r in load_rule_set(uncached, own).rules] == [r.meta for r in here.rules]
    assert not own.temporary.exists()

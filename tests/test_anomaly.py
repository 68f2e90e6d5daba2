"""The anomaly model: the vectorized scorer equals scikit-learn, loading refuses what it should,
the planted behaviours are caught and the benign night work is not, and the flow explains."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import IsolationForest

from logwarden.anomaly.model import AnomalyModel, ModelError, VectorizedForest
from logwarden.anomaly.train import train
from logwarden.parsers import ParserOptions
from logwarden.simulate import simulate
from logwarden.standard import load_profile

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(3)
TRAIN = RNG.normal(size=(3000, 14)) * RNG.uniform(0.1, 5, size=14)
FORESTS = [IsolationForest(n_estimators=60, random_state=1).fit(TRAIN),
           IsolationForest(n_estimators=40, max_features=0.5, max_samples=100, random_state=2).fit(TRAIN)]
SCORERS = [VectorizedForest(f) for f in FORESTS]


@settings(max_examples=60, deadline=None)
@given(which=st.sampled_from([0, 1]),
       X=arrays(np.float64, st.tuples(st.integers(1, 64), st.just(14)),
                elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)))
def test_vectorized_scorer_equals_score_samples(which: int, X: np.ndarray) -> None:
    expected = -FORESTS[which].score_samples(X)  # the one sign flip: higher = more anomalous
    assert np.max(np.abs(SCORERS[which].score(X) - expected)) <= 1e-9


def test_many_rows_are_scored_in_blocks_as_one_call_would() -> None:
    from logwarden.anomaly.model import SCORE_BLOCK

    X = RNG.normal(size=(2 * SCORE_BLOCK + 37, 14)) * 3
    got = SCORERS[1].score(X)
    assert got.shape == (len(X),)
    assert np.max(np.abs(got - -FORESTS[1].score_samples(X))) <= 1e-9
    assert np.array_equal(got[SCORE_BLOCK:SCORE_BLOCK + 5], SCORERS[1].score(X[SCORE_BLOCK:SCORE_BLOCK + 5]))


def test_scoring_never_changes_the_model() -> None:
    before = [t.tree_.threshold.copy() for t in FORESTS[0].estimators_]
    SCORERS[0].score(TRAIN[:100])
    assert all(np.array_equal(a, t.tree_.threshold) for a, t in zip(before, FORESTS[0].estimators_, strict=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    sim = tmp_path_factory.mktemp("sim")
    simulate(sim, days=1, seed=11, end=datetime(2026, 11, 25, tzinfo=UTC), baseline_days=5)
    inputs = sorted(str(p) for p in (sim / "baseline").glob("*/*") if p.suffix in (".log", ".jsonl"))
    out = tmp_path_factory.mktemp("model") / "m"
    card = train(inputs, ParserOptions(), load_profile(), out, timedelta(minutes=10), 1.0, sim)
    return out, card


def test_planted_behaviours_are_caught_and_benign_night_work_is_not(trained: tuple[Path, dict]) -> None:
    _, card = trained
    e = card["evaluation"]
    assert e["anomalies"] == {"night_bulk_read": True, "service_account_interactive": True, "mass_download": True}
    assert e["recall"] == 1.0
    assert e["benign_checks"] == {"nightly_batch_job_flagged": False, "on_call_at_night_flagged": False}
    assert e["precision"] >= 0.8 and e["false_alerts_per_day"] <= 2


def test_model_card_describes_the_model(trained: tuple[Path, dict]) -> None:
    out, card = trained
    loaded = AnomalyModel.load(out)
    assert card["features"] == list(loaded.card_["features"]) and card["threshold"] == loaded.threshold_
    assert {"scikit-learn", "numpy", "logwarden"} <= set(card["versions"])
    assert card["training"]["windows"] > 1000 and len(card["training"]["inputs"]) == 6
    assert all(len(i["sha256"]) == 64 for i in card["training"]["inputs"])
    assert set(card["score_distribution"]) == {"p50", "p90", "p99", "p999", "max"}


@pytest.mark.parametrize(("damage", "message"), [
    ("card_version", "trained with scikit-learn 0.1"),
    ("card_features", "features differ"),
    ("model_bytes", "m.skops does not match the card's SHA-256"),
    ("baselines_bytes", "m.baselines.json does not match the card's SHA-256"),
    ("scores_bytes", "m.forest.npz does not match the card's SHA-256"),
    ("missing_card", "is missing"),
])
def test_loading_refuses_a_mismatched_model(trained: tuple[Path, dict], tmp_path: Path, damage: str,
                                            message: str) -> None:
    src, _ = trained
    for suffix in (".skops", ".card.json", ".baselines.json", ".forest.npz"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"m{suffix}")
    m = tmp_path / "m"
    card_path = tmp_path / "m.card.json"
    card = orjson.loads(card_path.read_bytes())
    if damage == "card_version":
        card["versions"]["scikit-learn"] = "0.1"
    elif damage == "card_features":
        card["features"] = card["features"][::-1]
    elif damage == "model_bytes":
        (tmp_path / "m.skops").write_bytes((tmp_path / "m.skops").read_bytes() + b"\0")
    elif damage == "baselines_bytes":
        (tmp_path / "m.baselines.json").write_text("{}")
    elif damage == "scores_bytes":  # a threshold moved: the forest would score otherwise
        arrays = dict(np.load(tmp_path / "m.forest.npz"))
        arrays["threshold"][0] += 1.0
        np.savez(tmp_path / "m.forest.npz", **arrays)
    card_path.write_bytes(orjson.dumps(card))
    if damage == "missing_card":
        card_path.unlink()
    with pytest.raises(ModelError, match=message):
        AnomalyModel.load(m)


def test_a_model_scores_from_its_arrays_as_from_its_forest(trained: tuple[Path, dict], tmp_path: Path) -> None:
    """``NAME.forest.npz`` holds the scorer's arrays: a model loaded from them scores as one
    built from the forest (``NAME.skops``), and one copied without them loads from the forest."""
    src, _ = trained
    X = RNG.normal(size=(500, 14)) * 3
    from_arrays = AnomalyModel.load(src)
    assert from_arrays._forest is None  # not read: the arrays were enough
    expected = VectorizedForest(from_arrays.forest_).score(X)  # the forest, read from its file when asked
    assert np.array_equal(from_arrays.scorer_.score(X), expected)
    for suffix in (".skops", ".card.json", ".baselines.json"):  # an older model's three files
        shutil.copy(src.with_suffix(suffix), tmp_path / f"m{suffix}")
    from_forest = AnomalyModel.load(tmp_path / "m")
    assert from_forest._forest is not None and np.array_equal(from_forest.scorer_.score(X), expected)


def test_a_run_loads_the_shipped_model_without_scikit_learn() -> None:
    """A run's start-up reads the shipped model with numpy alone (importing scikit-learn and
    skops was most of it), and scores as the forest in the ``.skops`` file does."""
    import ast
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from logwarden.anomaly.model import AnomalyModel\n"
            f"m = AnomalyModel.load(__import__('pathlib').Path({str(ROOT / 'models' / 'default')!r}))\n"
            "X = np.random.default_rng(5).normal(size=(300, 14)) * 3\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('sklearn', 'skops', 'scipy')))\n"
            "print(repr(m.scorer_.score(X).tolist()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    imported, scores = out.splitlines()
    assert imported == "[]"
    X = np.random.default_rng(5).normal(size=(300, 14)) * 3
    forest = AnomalyModel.load(ROOT / "models" / "default").forest_
    assert ast.literal_eval(scores) == VectorizedForest(forest).score(X).tolist()


def test_the_shipped_model_loads_and_its_card_reports_held_out_figures() -> None:
    model = AnomalyModel.load(ROOT / "models" / "default")
    e = model.card_["evaluation"]
    assert e["recall"] == 1.0 and e["precision"] is not None and "alerts_per_day" in e
    assert not any(e["benign_checks"].values())


def test_the_flow_raises_explained_anomaly_alerts(trained: tuple[Path, dict], tmp_path: Path) -> None:
    from bytewax.testing import TestingSink, run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.sources import resolve_inputs
    from logwarden.sources.bytewax.files import LogFileSource

    out, _ = trained
    sim = tmp_path / "sim"
    simulate(sim, days=1, seed=11, end=datetime(2026, 11, 25, tzinfo=UTC))
    options = ParserOptions()
    inputs = resolve_inputs(sorted(str(p) for p in sim.glob("*/*") if p.suffix in (".log", ".jsonl")), None, options)
    alerts: list = []
    config = FlowConfig(profile=load_profile(), parser_options=options, rules=[], model=AnomalyModel.load(out))
    run_main(build_flow(config, LogFileSource(inputs, 500), Sinks([TestingSink(alerts)], [], [])))
    found = {a.entity: a for _, a in alerts if a.rule_id == "anomaly.iforest"}
    assert {"judy", "frank", "svc-etl"} <= set(found)
    judy = found["judy"].to_dict()
    assert judy["score"] > 0.5 and "active at 03:00" in judy["explanation"] and "usual" in judy["explanation"]
    assert "dave" not in found and "alice" not in {e for e, a in found.items() if a.start.hour < 6}


def test_an_alert_must_stand_out_from_the_principals_own_usual_scores(trained: tuple[Path, dict]) -> None:
    from logwarden.anomaly.features import MIN_SCORES, Baseline, WindowStats, featurize

    model = AnomalyModel.load(trained[0])
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)

    def row(baseline: Baseline):  # type: ignore[no-untyped-def]
        w = WindowStats("svc-deploy", start + timedelta(days=3), events=14, privileged=6)
        return featurize(w, baseline)

    fresh = Baseline(windows=40, first=start, hours=[2] * 24)
    model.threshold_ = -1.0  # every window is unusual for the population
    assert len(model.anomalies([row(fresh)])) == 1  # too few own scores yet: the threshold alone
    busy = fresh.copy()
    scores = np.linspace(0.97, 1.0, MIN_SCORES + 3)
    for s in scores:
        busy.learn_score(float(s))
    assert busy.score_mean == pytest.approx(scores.mean()) and busy.score_bound(0) == pytest.approx(scores.mean())
    assert busy.score_bound() == pytest.approx(scores.mean() + 3 * scores.std())
    assert model.anomalies([row(busy)]) == []  # always this unusual: usual for this principal
    assert busy.score_n == len(scores) + 1  # and the score was learned
    assert Baseline.from_json(orjson.loads(orjson.dumps(busy.to_json()))) == busy


def test_the_warm_up_gauge_reaches_zero() -> None:
    from logwarden.anomaly.features import Baseline, Gate
    from logwarden.anomaly.stream import ModelProgress
    from logwarden.metrics import Metrics, parse_exposition

    progress = ModelProgress(Gate(timedelta(hours=2), 1), portable=True)
    metrics = Metrics()
    metrics.watch_model(progress)

    def left() -> float:
        from prometheus_client import generate_latest

        return parse_exposition(generate_latest(metrics.registry).decode())["logwarden_model_warmup_remaining_seconds"]

    assert left() == 7200  # nothing seen: the whole warm-up ahead
    t0 = datetime(2026, 11, 24, tzinfo=UTC)
    b = Baseline(windows=3, first=t0)
    progress.update("alice", b, t0 + timedelta(hours=1))
    assert left() == 3600 and "warming up: 1.0h of 2h" in progress.summary()
    progress.update("alice", b, t0 + timedelta(hours=3))
    assert left() == 0 and "warm-up done" in progress.summary() and progress.counts() == (1, 0)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
                 st.lists(st.integers(0, 300).map(str) | st.sampled_from(["01", "00", "\uff12", "", "x"]),
                          min_size=3, max_size=5).map(".".join)))
def test_the_network_of_an_address_is_the_one_ipaddress_gives(address: str) -> None:
    """The per-/16 cache (every event of a principal asks) gives what ipaddress itself gives,
    private ranges, special networks smaller than a /16 and malformed addresses included."""
    from logwarden.anomaly.features import _network_of, network_of

    assert network_of(address) == _network_of(address)


def test_python_s_private_ranges_are_whole_16s_but_in_the_mixed_ones() -> None:
    """What the cache relies on, checked on this Python: outside ``_MIXED`` a /16 is private
    throughout or not at all (its edges and a middle address agree)."""
    import ipaddress

    from logwarden.anomaly.features import _MIXED, _network_of, network_of

    for a in range(256):
        for b in range(256):
            if f"{a}.{b}" in _MIXED:
                for tail in ("0.0", "0.5", "0.170", "2.9", "100.7", "113.1", "255.255"):
                    assert network_of(f"{a}.{b}.{tail}") == _network_of(f"{a}.{b}.{tail}")
                continue
            edges = {ipaddress.ip_address(f"{a}.{b}.{tail}").is_private for tail in ("0.0", "128.77", "255.255")}
            assert len(edges) == 1, (a, b)

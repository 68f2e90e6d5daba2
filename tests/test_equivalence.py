"""The flow against a per-event reference (``tests/reference.py``) on a simulated week in every
format, with its planted bad lines and secrets: the same violations, the same alerts (the
standard's, the rules' and the model's) and the same feature rows scored, with one worker and
with two; and with a replay's watermark (``logwarden.replay``), which folds keys and closes
windows before the end."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, cluster_main, run_main

from flows.main import FlowConfig, Sinks, build_flow
from logwarden.anomaly.features import Row
from logwarden.anomaly.model import AnomalyModel
from logwarden.app import default_model_path
from logwarden.parsers import ParserOptions
from logwarden.replay import ReplayClock
from logwarden.rules.loader import default_rule_files, load_rules
from logwarden.simulate import simulate
from logwarden.sources import resolve_inputs
from logwarden.sources.bytewax.files import LogFileSource
from logwarden.standard import Profile, TimestampPolicy, load_profile
from tests.conftest import SIM_END, sim_inputs
from tests.reference import replay

CHUNK = 500  # lines a chunk, in the flow and in the reference (the standard's alerts are raised per chunk)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("week")
    simulate(out, days=7, seed=5, end=SIM_END)
    return out


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    path = default_model_path()
    assert path is not None, "the shipped model (models/default.skops) is missing"
    return AnomalyModel.load(path)


def _canon(items: list[Any]) -> list[dict[str, Any]]:
    return sorted((x.to_dict() for x in items), key=lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS))


def _rows(rows: list[Row]) -> list[tuple[Any, ...]]:
    return sorted((r.window.principal, r.window.start, tuple(r.x.tolist()), r.ready) for r in rows)


def _flow(week: Path, model: AnomalyModel, workers: int, profile: Profile,
          clock: bool) -> tuple[dict[str, list[dict[str, Any]]], list[Row], int]:
    options = ParserOptions()
    rows: list[Row] = []
    calls = 0
    lock = threading.Lock()

    def told(batch: list[Row]) -> None:
        nonlocal calls
        with lock:
            rows.extend(batch)
            calls += 1

    inputs = resolve_inputs(sim_inputs(week), None, options)
    source = LogFileSource(inputs, CHUNK)
    replay_clock = None
    if clock:  # as ``logwarden.app`` makes it for a replay of files on one worker
        replay_clock = source.pace = ReplayClock(path for path, _ in inputs)
    config = FlowConfig(profile=profile, parser_options=options,
                        rules=load_rules(default_rule_files()).enabled(), model=model,
                        feature_window=timedelta(minutes=10), on_rows=told, replay_clock=replay_clock)
    out: dict[str, list[Any]] = {"alerts": [], "violations": []}
    flow = build_flow(config, source, Sinks([TestingSink(out["alerts"])], [TestingSink(out["violations"])], []))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {name: _canon([v for _, v in values]) for name, values in out.items()}, rows, calls


# With the clock, a standard that allows 6 hours of disorder: its watermark moves day by day
# through the week, and the flow folds and scores most of it before the end.
CASES = {"one worker": (1, False, None), "two workers": (2, False, None),
         "one worker, the replay's watermark": (1, True, timedelta(hours=6))}


@pytest.mark.parametrize("case", list(CASES))
def test_the_flow_gives_what_the_per_event_reference_gives(week: Path, model: AnomalyModel, case: str) -> None:
    workers, clock, max_age = CASES[case]
    options = ParserOptions()
    profile = load_profile()
    if max_age is not None:
        profile = profile.model_copy(update={"timestamp": TimestampPolicy(max_age=max_age)})
    expected = replay(resolve_inputs(sim_inputs(week), None, options), profile,
                      load_rules(default_rule_files()).enabled(), model, CHUNK, options)
    got, rows, calls = _flow(week, model, workers, profile, clock)
    assert got["violations"] == _canon(expected.violations)
    assert got["alerts"] == _canon(expected.alerts)
    assert _rows(rows) == _rows(expected.rows)
    # the end of input scores every principal's windows in one call; the watermark, day by day
    assert (calls > 50) is clock
    # what makes the comparison worth something: every kind of outcome is in it
    reasons = {v["reason"] for v in got["violations"]}
    assert {"malformed", "bad_timestamp", "missing_field", "secret"} <= reasons
    rules = {a["rule_id"] for a in got["alerts"]}
    assert any(r.startswith("standard.") for r in rules) and "anomaly.iforest" in rules and len(rules) > 6
    assert len(rows) > 500

"""The flow against a per-event reference (``tests/reference.py``) on a simulated week in every
format, with its planted bad lines and secrets: the same violations, the same alerts (the
standard's, the rules' and the model's) and the same feature rows scored, with one worker and
with two."""

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
from logwarden.rules.loader import default_rule_files, load_rules
from logwarden.simulate import simulate
from logwarden.sources import resolve_inputs
from logwarden.sources.bytewax.files import LogFileSource
from logwarden.standard import load_profile
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


def _flow(week: Path, model: AnomalyModel, workers: int) -> tuple[dict[str, list[dict[str, Any]]], list[Row]]:
    options = ParserOptions()
    rows: list[Row] = []
    lock = threading.Lock()

    def told(batch: list[Row]) -> None:
        with lock:
            rows.extend(batch)

    config = FlowConfig(profile=load_profile(), parser_options=options,
                        rules=load_rules(default_rule_files()).enabled(), model=model,
                        feature_window=timedelta(minutes=10), on_rows=told)
    out: dict[str, list[Any]] = {"alerts": [], "violations": []}
    source = LogFileSource(resolve_inputs(sim_inputs(week), None, options), CHUNK)
    flow = build_flow(config, source, Sinks([TestingSink(out["alerts"])], [TestingSink(out["violations"])], []))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {name: _canon([v for _, v in values]) for name, values in out.items()}, rows


@pytest.mark.parametrize("workers", [1, 2])
def test_the_flow_gives_what_the_per_event_reference_gives(week: Path, model: AnomalyModel, workers: int) -> None:
    options = ParserOptions()
    expected = replay(resolve_inputs(sim_inputs(week), None, options), load_profile(),
                      load_rules(default_rule_files()).enabled(), model, CHUNK, options)
    got, rows = _flow(week, model, workers)
    assert got["violations"] == _canon(expected.violations)
    assert got["alerts"] == _canon(expected.alerts)
    assert _rows(rows) == _rows(expected.rows)
    # what makes the comparison worth something: every kind of outcome is in it
    reasons = {v["reason"] for v in got["violations"]}
    assert {"malformed", "bad_timestamp", "missing_field", "secret"} <= reasons
    rules = {a["rule_id"] for a in got["alerts"]}
    assert any(r.startswith("standard.") for r in rules) and "anomaly.iforest" in rules and len(rules) > 6
    assert len(rows) > 500

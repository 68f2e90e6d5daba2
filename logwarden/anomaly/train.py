"""Training and evaluation: the same parsers, standard and features as the flow."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from logwarden.anomaly.features import Baseline, Gate, WindowStats, prequential, windows_of
from logwarden.anomaly.model import AnomalyModel
from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.sources import LineReader, resolve_inputs
from logwarden.standard import Profile, SourceChecker
from logwarden.timeutil import isoformat, parse_iso

LABEL_SLACK = timedelta(minutes=30)  # a flagged window this close to a labelled anomaly catches it


def load_events(paths: list[str], options: ParserOptions, profile: Profile) -> list[Event]:
    events: list[Event] = []
    for path, fmt in resolve_inputs(paths, None, options):
        checker = SourceChecker(profile, build_parser(fmt, options), path, max_line=options.max_line)
        for chunk in LineReader(path, fmt, 5000).chunks():
            events.extend(x for x in checker.check_lines(chunk.lines, chunk.first_line) if type(x) is Event)
    return events


def span_days(windows: list[WindowStats], width: timedelta) -> float:
    if not windows:
        return 0.0
    return max(((windows[-1].start + width) - windows[0].start) / timedelta(days=1), 1e-9)


def train(paths: list[str], options: ParserOptions, profile: Profile, out: Path, width: timedelta,
          alerts_per_day: float, evaluate_dir: Path | None = None, gate: Gate | None = None,
          portable: bool = False) -> dict[str, Any]:
    """Fit on baseline logs the way the flow will see them: windows in time order, each described
    against its principal's baseline so far (``prequential``). ``portable``: keep no baselines, so
    the model can be shipped to other organisations (their principals warm up first)."""
    gate = gate or Gate()
    events = load_events(paths, options, profile)
    windows = windows_of(events, width)
    baselines: dict[str, Baseline] = {}
    rows = prequential(windows, baselines, gate)
    ready = [r for r in rows if r.ready]
    if len(ready) < 50:
        from logwarden.errors import LogwardenError

        raise LogwardenError(f"only {len(ready)} principal-windows with a ready baseline in the training input "
                             f"({len(windows)} windows; a principal needs {gate.min_windows} windows over "
                             f"{gate.warmup}): give more baseline logs")
    days = span_days([r.window for r in ready], width)
    model = AnomalyModel(alerts_per_day=alerts_per_day).fit(rows, days, baselines, gate, portable)
    learned = {k: v.copy() for k, v in baselines.items()}  # a portable model drops them; evaluation uses them
    extra: dict[str, Any] = {
        "window": str(width),
        "training": {
            "from": isoformat(windows[0].start), "to": isoformat(windows[-1].start + width), "days": round(days, 3),
            "events": len(events), "windows": len(windows), "scored_windows": len(ready),
            "principals": len(baselines),
            "inputs": [{"path": Path(p).name, "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
                       for p in paths],
        },
    }
    if evaluate_dir is not None:
        extra["evaluation"] = evaluate(model, evaluate_dir, options, profile, width, learned)
    return model.save(out, extra)


def evaluate(model: AnomalyModel, directory: Path, options: ParserOptions, profile: Profile,
             width: timedelta, baselines: dict[str, Baseline] | None = None) -> dict[str, Any]:
    """Precision, recall and alerts per day on held-out simulated days with their labels, scored as
    the flow would: each principal from its baseline on (``baselines``, else the model's own: a
    portable model is evaluated with the baselines of its training days, as after a warm-up)."""
    paths = sorted(str(p) for p in directory.glob("*/*") if p.is_file() and p.suffix in (".log", ".jsonl")
                   and p.parent.name != "baseline")
    labels = [orjson.loads(x) for x in (directory / "labels.jsonl").read_text().splitlines() if x]
    anomalies = [lb for lb in labels if lb["type"] == "anomaly"]
    windows = windows_of(load_events(paths, options, profile), width)
    known = baselines or model.baselines_
    start = {w.principal: known[w.principal].copy() if w.principal in known else Baseline() for w in windows}
    flagged = model.anomalies(prequential(windows, start, model.gate_))

    def near(label: dict[str, Any], w: WindowStats) -> bool:
        t = parse_iso(label["time"])
        return w.principal == label["entity"] and w.start - LABEL_SLACK <= t <= w.start + width + LABEL_SLACK

    caught = {lb["name"]: any(near(lb, a.window) for a in flagged) for lb in anomalies}
    planted = [lb for lb in labels if lb["type"] in ("anomaly", "attack")]

    def explained(w: WindowStats) -> bool:  # near any planted anomaly or attack
        return any(abs((parse_iso(lb["time"]) - w.start).total_seconds()) <= (width + LABEL_SLACK).total_seconds()
                   for lb in planted)

    true_windows = sum(explained(a.window) for a in flagged)
    alerts = _merge(sorted((a.window.principal, a.window.start) for a in flagged), width)
    false_alerts = _merge(sorted((a.window.principal, a.window.start) for a in flagged if not explained(a.window)),
                          width)
    days = span_days(windows, width)
    planted_entities = {lb["entity"] for lb in planted}
    return {
        "held_out": {"from": isoformat(windows[0].start) if windows else None, "days": round(days, 3),
                     "windows": len(windows)},
        "anomalies": caught,
        "recall": sum(caught.values()) / len(caught) if caught else None,
        "precision": round(true_windows / len(flagged), 3) if flagged else None,
        "flagged_windows": len(flagged),
        "alerts_per_day": round(alerts / days, 3) if days else None,
        "false_alerts_per_day": round(false_alerts / days, 3) if days else None,
        "unexplained": sorted({f"{a.window.principal} {isoformat(a.window.start)}" for a in flagged
                               if not explained(a.window)}),
        "benign_checks": {
            # the batch job runs at night, and so does the on-call engineer: neither is an anomaly
            "nightly_batch_job_flagged": any(a.window.principal.startswith("svc-") and a.window.start.hour < 6
                                             and not explained(a.window) for a in flagged),
            "on_call_at_night_flagged": any(a.window.principal not in planted_entities
                                            and not a.window.principal.startswith("svc-")
                                            and a.window.start.hour < 6 for a in flagged),
        },
    }


def _merge(starts: list[tuple[str, datetime]], width: timedelta) -> int:
    """Alerts as the flow raises them: consecutive flagged windows of a principal are one."""
    count, last = 0, None
    for principal, start in starts:
        if last is None or last[0] != principal or start > last[1] + width:
            count += 1
        last = (principal, start)
    return count

"""A straightforward per-event reference of a replay, for the equivalence test of the flow.

Everything one event at a time, in the plainest order, with no batching of our own and no
Bytewax: every line through the standard's full path (``SourceChecker.lane`` off: parse, judge,
count, feed the monitor, line by line); every event it passes, in one time-ordered list,
through every rule (``evaluate``); every event with a principal, one by one, into its feature
windows, all scored at the end of input. The flow must give the same violations and alerts, and
score the same feature rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from logwarden.alerts import Alert
from logwarden.anomaly.features import Row, principal_of
from logwarden.anomaly.model import AnomalyModel
from logwarden.anomaly.stream import PrincipalScorer, PrincipalState
from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.rules import Rule
from logwarden.rules.evaluate import evaluate
from logwarden.sources import LineReader
from logwarden.standard import Profile, SourceChecker
from logwarden.violation import Violation


@dataclass
class Replayed:
    violations: list[Violation] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # the standard's, the rules' and the model's
    rows: list[Row] = field(default_factory=list)  # every feature row the model scored


def replay(inputs: list[tuple[str, str]], profile: Profile, rules: list[Rule], model: AnomalyModel | None,
           chunk_size: int, options: ParserOptions | None = None) -> Replayed:
    """``inputs``: (path, format). The standard's own alerts are raised at the end of each chunk
    of ``chunk_size`` lines, as in the flow, so the chunks are read the flow's way."""
    options = options or ParserOptions()
    out = Replayed()
    events: list[Event] = []
    for path, fmt in inputs:
        checker = SourceChecker(profile, build_parser(fmt, options), path)
        checker.lane = False
        for chunk in LineReader(path, fmt, chunk_size).chunks():
            for item in checker.check_lines(chunk.lines, chunk.first_line):
                if isinstance(item, Event):
                    events.append(item)
                elif isinstance(item, Violation):
                    out.violations.append(item)
                else:
                    out.alerts.append(item)
        out.alerts += checker.finish()
    events.sort(key=lambda e: (e.timestamp, e.source, e.line))
    out.alerts += evaluate(rules, events)
    if model is not None:
        out.alerts += _score(model, events, out.rows)
    return out


def _score(model: AnomalyModel, events: list[Event], rows: list[Row]) -> list[Alert]:
    scorer = PrincipalScorer(model, timedelta(minutes=10), None, on_rows=rows.extend)  # the flow's window
    states: dict[str, PrincipalState] = {}
    for event in events:
        principal = principal_of(event)
        if principal is not None:
            scorer.add(states.setdefault(principal, PrincipalState(principal)), [event])
    return [alert for alerts in scorer.close_many(list(states.values()), None) for alert in alerts]

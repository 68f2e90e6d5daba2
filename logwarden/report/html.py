"""The report as one HTML page: Jinja2 (autoescaped: log excerpts are anyone's text) and inline SVG."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from datetime import timedelta
from importlib import resources
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from logwarden.report import charts
from logwarden.report.data import SEVERITIES, STATES, ReportData
from logwarden.timeutil import isoformat

TOP_RULES = 20  # rules shown in the alerts chart (the table lists all)


def _hours(values: list[timedelta]) -> float:
    return round(statistics.median(v.total_seconds() for v in values) / 3600, 2) if values else 0.0


def _human(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"


def _short(names: list[str]) -> dict[str, str]:
    """Source paths without the directory they all share, for a chart's legend."""
    if len(names) < 2 or not all("/" in n for n in names):
        return {n: n for n in names}
    common = os.path.commonpath(names)
    return {n: n[len(common):].lstrip("/") or n for n in names}


def _percent(counts: list[int] | None) -> float | None:
    """A day's compliant share in percent; None for a day without records."""
    return round(100 * counts[1] / counts[0], 2) if counts and counts[0] else None


def _compliance(data: ReportData, table: dict[str, dict[str, list[int]]], title: str) -> str | None:
    days = data.days
    label = _short(sorted(table))
    series = {label[name]: [_percent(counts.get(d)) for d in days] for name, counts in sorted(table.items()) if counts}
    return charts.lines(title, days, series, "compliant records (%)") if series else None


def context(data: ReportData) -> dict[str, Any]:
    """What the template shows, charts included."""
    svg: dict[str, str | None] = {}
    svg["sources"] = _compliance(data, data.sources, "Compliance per source and day")
    svg["scopes"] = _compliance(data, data.scopes, "Compliance per scope and day")
    reasons = data.violations.most_common()
    svg["violations"] = charts.bars("Violations by reason", [r for r, _ in reasons],
                                    {"records": [n for _, n in reasons]}, "records") if reasons else None
    by_rule = Counter(a["rule_id"] for a in data.alerts)
    top = [r for r, _ in by_rule.most_common(TOP_RULES)]
    stacks = {sev: [sum(1 for a in data.alerts if a["rule_id"] == r and a.get("severity") == sev) for r in top]
              for sev in SEVERITIES if any(a.get("severity") == sev for a in data.alerts)}
    svg["alerts"] = charts.bars("Alerts by rule and severity", top, stacks, "alerts") if top else None
    sevs = [s for s in SEVERITIES if any(i.severity == s for i in data.incidents)]
    svg["incidents"] = charts.columns("Incidents by severity and state", sevs,
                                      {st: [sum(1 for i in data.incidents if i.severity == s and i.state == st)
                                            for s in sevs] for st in STATES}, "incidents") if sevs else None
    response = [(s, [i.to_ack for i in data.incidents if i.severity == s and i.to_ack is not None],
                 [i.to_resolve for i in data.incidents if i.severity == s and i.to_resolve is not None]) for s in sevs]
    response = [(s, acks, res) for s, acks, res in response if acks or res]
    svg["response"] = charts.columns("Median time to acknowledge and to resolve", [s for s, _, _ in response],
                                     {"to acknowledge": [_hours(a) for _, a, _ in response],
                                      "to resolve": [_hours(r) for _, _, r in response]}, "hours") \
        if response else None
    frameworks = Counter(c.framework for c in data.coverage)
    fired = Counter(c.framework for c in data.coverage if c.alerts)
    svg["coverage"] = charts.bars("Controls covered by the rules in force", sorted(frameworks),
                                  {"alerted in the period": [fired[f] for f in sorted(frameworks)],
                                   "quiet": [frameworks[f] - fired[f] for f in sorted(frameworks)]},
                                  "controls") if frameworks else None
    svg["budgets"] = charts.bars("Busiest day per detector: new incidents", [b.rule_id for b in data.budgets],
                                 {"incidents": [b.busiest for b in data.budgets]}, "new incidents on its busiest day") \
        if data.budgets else None
    records = sum(n for t in data.sources.values() for n, _ in t.values())
    compliant = sum(ok for t in data.sources.values() for _, ok in t.values())
    return {
        "d": data, "start": isoformat(data.start), "end": isoformat(data.end),
        "svg": {k: Markup(v) if v else None for k, v in svg.items()},  # our own SVG
        "records": records, "compliance": compliant / records if records else None,
        "rates": {name: ReportData.rate(t) for name, t in data.sources.items()},
        "scope_rates": {name: ReportData.rate(t) for name, t in data.scopes.items()},
        "by_rule": by_rule.most_common(), "reasons": reasons,
        "response": [(s, len(a), _human(statistics.median(a)) if a else "-", len(r),
                      _human(statistics.median(r)) if r else "-") for s, a, r in response],
        "open": sum(1 for i in data.incidents if i.state == "open"), "human": _human,
    }


def render(data: ReportData) -> str:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                      lstrip_blocks=True)
    template = env.from_string(resources.files("logwarden.report").joinpath("report.html.j2").read_text("utf-8"))
    return template.render(**context(data))

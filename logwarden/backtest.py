"""``logwarden backtest``: what each detector would have cost a team on past logs.

A replay through the real flow (no Slack, incidents in memory) summarized per detector: alerts and
incidents per day of the logs' own time, the entities it alerted on most, and whether it went over
its daily budget of new incidents. This is how a team tunes before turning Slack on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logwarden.alerts import Alert
from logwarden.incidents.model import Incident
from logwarden.incidents.store import OverBudget
from logwarden.timeutil import isoformat

TOP = 5


@dataclass
class DetectorRow:
    detector: str
    alerts: int
    incidents: int
    alerts_per_day: float
    incidents_per_day: float
    entities: int
    top_entities: list[dict[str, Any]] = field(default_factory=list)
    over_budget_days: list[str] = field(default_factory=list)  # days on which it went over
    folded: int = 0  # alerts folded into over-budget incidents


@dataclass
class BacktestReport:
    start: datetime | None
    end: datetime | None
    days: float
    detectors: list[DetectorRow]

    @property
    def incidents_per_day(self) -> float:
        return round(sum(r.incidents for r in self.detectors) / self.days, 3)

    def to_dict(self) -> dict[str, Any]:
        return {"from": isoformat(self.start) if self.start else None,
                "to": isoformat(self.end) if self.end else None, "days": round(self.days, 3),
                "incidents_per_day": self.incidents_per_day,
                "detectors": [asdict(r) for r in self.detectors],
                "over_budget": [r.detector for r in self.detectors if r.over_budget_days]}

    def lines(self) -> list[str]:
        span = (f"{isoformat(self.start)} .. {isoformat(self.end)}" if self.start and self.end else "no events")
        out = [f"backtest over {span} ({self.days:.2f} day(s)): {self.incidents_per_day:g} new incidents a day",
               "", f"{'detector':<34} {'alerts/day':>10} {'incidents/day':>13}  {'over budget':<12} top entities"]
        for r in self.detectors:
            top = ", ".join(f"{t['entity']} ({t['alerts']})" for t in r.top_entities) or "-"
            over = f"{len(r.over_budget_days)} day(s)" if r.over_budget_days else "-"
            out.append(f"{r.detector:<34} {r.alerts_per_day:>10g} {r.incidents_per_day:>13g}  {over:<12} {top}")
        if not self.detectors:
            out.append("(no detector fired)")
        return out


def summarize(alerts: list[Alert], incidents: list[Incident], start: datetime | None, end: datetime | None,
              over_budget: list[OverBudget] | None = None) -> BacktestReport:
    """``over_budget``: the store's ``budget_report()`` (detectors and days past their budget)."""
    days = max((end - start) / timedelta(days=1), 1.0) if start and end else 1.0
    firsts: dict[str, Alert] = {}
    for a in alerts:  # one alert per id, whatever its revisions
        firsts.setdefault(a.alert_id, a)
    per_rule: dict[str, Counter[str]] = {}
    for a in firsts.values():
        per_rule.setdefault(a.rule_id, Counter())[a.entity] += 1
    opened = Counter(i.rule_id for i in incidents)
    folded: dict[str, dict[str, int]] = {}
    for ob in over_budget or []:
        folded.setdefault(ob.rule_id, {})[ob.day] = ob.folded
    rows = []
    for rule in sorted(set(per_rule) | set(opened)):
        entities = per_rule.get(rule, Counter())
        days_over = folded.get(rule, {})
        rows.append(DetectorRow(
            rule, sum(entities.values()), opened[rule], round(sum(entities.values()) / days, 3),
            round(opened[rule] / days, 3), len(entities),
            [{"entity": e, "alerts": n} for e, n in sorted(entities.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]],
            sorted(days_over), sum(days_over.values())))
    rows.sort(key=lambda r: (-r.incidents, -r.alerts, r.detector))
    return BacktestReport(start, end, days, rows)

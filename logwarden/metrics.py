"""Prometheus metrics of a running flow, served on ``LOGWARDEN_METRICS_PORT``.

Fed from what the flow already emits (scorecards, violations, alerts, incident changes, delivery
reports), so domain code stays free of metrics. ``logwarden status`` reads them back.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from logwarden.timeutil import utcnow


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.lines = Gauge("logwarden_lines", "input lines read, per source", ["source"], registry=r)
        self.events = Gauge("logwarden_events", "events that passed the standard, per source", ["source"], registry=r)
        self.violations = Counter("logwarden_violations", "violations, by reason and source", ["reason", "source"],
                                  registry=r)
        self.late = Counter("logwarden_late_events", "events later than the allowed lateness", registry=r)
        self.alerts = Counter("logwarden_alerts", "alert records (fired and updated), by rule", ["rule"], registry=r)
        self.incidents = Counter("logwarden_incident_changes", "incident changes, by rule and state",
                                 ["rule", "state"], registry=r)
        self.over_budget = Counter("logwarden_over_budget_alerts", "alerts folded into over-budget incidents "
                                   "(past their detector's daily noise budget), by rule", ["rule"], registry=r)
        self.notifications = Counter("logwarden_notifications", "notification outcomes", ["outcome"], registry=r)
        self.lag = Gauge("logwarden_lag_seconds", "now minus the newest event time seen, per source", ["source"],
                         registry=r)
        self.outbox = Gauge("logwarden_outbox", "notifications waiting to be delivered", registry=r)
        self.state_keys = Gauge("logwarden_state_keys", "keys holding state: rule group keys, principals",
                                 ["step"], registry=r)
        self.recovery_bytes = Gauge("logwarden_recovery_bytes", "size of the recovery database on disk",
                                    registry=r)
        self.compliance = Gauge("logwarden_compliance_ratio", "compliant lines / lines, per source", ["source"],
                                registry=r)
        self.watermark_delay = Gauge("logwarden_watermark_delay_seconds", "how far a source's watermark "
                                     "runs behind its newest event: the disorder it showed, within its "
                                     "allowed lateness", ["source"], registry=r)
        self.redis_outages = Counter("logwarden_redis_outages", "times Redis stopped answering the incident "
                                     "store during the run", registry=r)
        self.redis_waiting = Gauge("logwarden_redis_waiting_updates", "incident updates waiting for Redis to "
                                   "answer again (0 while it answers)", registry=r)
        self._outages_seen = 0
        self.scope_compliance = Gauge("logwarden_scope_compliance_ratio", "compliant records / records of a "
                                      "compliance scope, per source", ["scope", "source"], registry=r)
        self.scope_records = Gauge("logwarden_scope_records", "records of a compliance scope, per source",
                                   ["scope", "source"], registry=r)
        self.allowed_lateness = Gauge("logwarden_allowed_lateness_seconds", "a source's allowed lateness: "
                                      "older events are late_event violations", ["source"], registry=r)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    # -- feeds ---------------------------------------------------------------------------------
    def scorecard(self, card: Any, newest: datetime | None = None) -> None:
        self.lines.labels(card.source).set(card.lines)
        self.events.labels(card.source).set(card.events)
        self.compliance.labels(card.source).set(card.compliance_rate)
        if newest is not None:
            self.lag.labels(card.source).set(max((utcnow() - newest).total_seconds(), 0.0))
        for scope, (n, ok) in getattr(card, "scopes", {}).items():
            self.scope_records.labels(scope, card.source).set(n)
            self.scope_compliance.labels(scope, card.source).set(ok / n if n else 1.0)
        if getattr(card, "watermark_delay", None) is not None:
            self.watermark_delay.labels(card.source).set(card.watermark_delay)
            self.allowed_lateness.labels(card.source).set(card.allowed_lateness)

    def state(self, step: str, delta: int) -> None:
        self.state_keys.labels(step).inc(delta)

    def watch_model(self, progress: Any) -> None:
        """The model's warm-up, read when scraped (``logwarden status`` shows it)."""
        r = self.registry
        principals = Gauge("logwarden_model_principals", "principals the model scores, or still learns",
                           ["state"], registry=r)
        principals.labels("scored").set_function(lambda: float(progress.counts()[0]))
        principals.labels("learning").set_function(lambda: float(progress.counts()[1]))
        left = Gauge("logwarden_model_warmup_remaining_seconds", "event time left in the organisation's "
                     "model warm-up (0: done)", registry=r)
        def remaining() -> float:
            left_now = progress.warmup_left()  # timedelta(0) once done; None before any principal
            return (progress.gate.warmup if left_now is None else left_now).total_seconds()

        left.set_function(remaining)

    def watch_recovery(self, directory: Path) -> None:
        self.recovery_bytes.set_function(lambda: float(sum(p.stat().st_size for p in directory.glob("*")
                                                           if p.is_file())))

    def violation(self, v: Any) -> None:
        if v.reason == "late_event":
            self.late.inc()
        self.violations.labels(v.reason, v.source).inc()

    def alert(self, a: Any) -> None:
        self.alerts.labels(a.rule_id).inc()

    def incident_changes(self, incidents: list[Any]) -> None:
        for i in incidents:
            self.incidents.labels(i.rule_id, i.state).inc()
            folded = (getattr(i, "over_budget", None) or {}).get("added", 0)
            if folded:
                self.over_budget.labels(i.rule_id).inc(folded)

    def redis(self, outages: int, waiting: int) -> None:
        """The incident store's Redis: outages so far in the run, updates waiting now."""
        if outages > self._outages_seen:
            self.redis_outages.inc(outages - self._outages_seen)
            self._outages_seen = outages
        self.redis_waiting.set(waiting)

    def delivery(self, report: Any, waiting: int) -> None:
        for outcome in ("sent", "failed", "deferred"):
            n = getattr(report, outcome)
            if n:
                self.notifications.labels(outcome).inc(n)
        self.outbox.set(waiting)


def parse_exposition(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from Prometheus' text format (for ``logwarden status``)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out

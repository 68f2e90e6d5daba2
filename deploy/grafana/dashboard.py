"""Writes ``deploy/grafana/logwarden.json``, the Grafana dashboard of the metrics logwarden
serves (``LOGWARDEN_METRICS_PORT``): ``python deploy/grafana/dashboard.py``.

Panels are data here (title, kind, unit, PromQL queries); ``tests/test_dashboard.py`` runs a real
Prometheus scraping a running flow and checks every query returns data, so a renamed metric
cannot leave a panel empty. ``$source`` and ``$scope`` are dashboard variables.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("logwarden.json")
S = 'source=~"$source"'

# (row, title, kind, unit, [(query, legend)])
PANELS: list[tuple[str, str, str, str, list[tuple[str, str]]]] = [
    ("Inputs", "Lines read per second", "timeseries", "ops",
     [(f"sum by (source) (deriv(logwarden_lines{{{S}}}[$__rate_interval]))", "{{source}}")]),
    ("Inputs", "Lag behind the newest event", "timeseries", "s",
     [(f"logwarden_lag_seconds{{{S}}}", "{{source}}")]),
    ("Inputs", "Watermark delay and allowed lateness", "timeseries", "s",
     [(f"logwarden_watermark_delay_seconds{{{S}}}", "delay {{source}}"),
      (f"logwarden_allowed_lateness_seconds{{{S}}}", "allowed {{source}}")]),
    ("The standard", "Compliance per source", "timeseries", "percentunit",
     [(f"logwarden_compliance_ratio{{{S}}}", "{{source}}")]),
    ("The standard", "Compliance per scope", "timeseries", "percentunit",
     [('sum by (scope) (logwarden_scope_compliance_ratio{scope=~"$scope"} * logwarden_scope_records{scope=~"$scope"})'
       ' / sum by (scope) (logwarden_scope_records{scope=~"$scope"})', "{{scope}}")]),
    ("The standard", "Violations by reason", "timeseries", "ops",
     [(f"sum by (reason) (rate(logwarden_violations_total{{{S}}}[$__rate_interval]))", "{{reason}}")]),
    ("Detections", "Alerts by rule (last hour)", "bargauge", "short",
     [("sum by (rule) (increase(logwarden_alerts_total[1h]))", "{{rule}}")]),
    ("Detections", "Incident changes by state", "timeseries", "ops",
     [("sum by (state) (rate(logwarden_incident_changes_total[$__rate_interval]))", "{{state}}")]),
    ("Detections", "Alerts folded over budget", "stat", "short",
     [("sum(logwarden_over_budget_alerts_total) or vector(0)", "folded")]),
    ("Notifications", "Notification outcomes", "timeseries", "ops",
     [("sum by (outcome) (rate(logwarden_notifications_total[$__rate_interval]))", "{{outcome}}")]),
    ("Notifications", "Outbox", "stat", "short", [("logwarden_outbox", "waiting")]),
    ("Health", "State held", "timeseries", "short", [("logwarden_state_keys", "{{step}}")]),
    ("Health", "Late events", "stat", "short", [("logwarden_late_events_total", "late")]),
    ("Health", "Model warm-up left", "stat", "s", [("logwarden_model_warmup_remaining_seconds", "left")]),
    ("Health", "Principals the model scores", "timeseries", "short", [("logwarden_model_principals", "{{state}}")]),
    ("Health", "Redis outages", "stat", "short", [("logwarden_redis_outages_total", "outages")]),
    ("Health", "Incident updates waiting for Redis", "stat", "short", [("logwarden_redis_waiting_updates", "waiting")]),
]


def queries() -> list[str]:
    """Every PromQL query of the dashboard, as written."""
    return [q for *_, targets in PANELS for q, _ in targets]


def build() -> dict:
    panels, y, row, x = [], 0, None, 0
    pid = 1
    for group, title, kind, unit, targets in PANELS:
        if group != row:
            if row is not None:
                y += 8
            panels.append({"id": pid, "type": "row", "title": group, "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
            pid, y, x, row = pid + 1, y + 1, 0, group
        if x >= 24:
            x, y = 0, y + 8
        panels.append({
            "id": pid, "type": kind, "title": title, "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "expr": q, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for i, (q, legend) in enumerate(targets)],
        })
        pid, x = pid + 1, x + 8
    variable = {"type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"}, "refresh": 2,
                "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}}
    return {
        "title": "logwarden", "uid": "logwarden", "schemaVersion": 39, "version": 1, "editable": True,
        "tags": ["logwarden", "security"], "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {**variable, "name": "source", "label": "source", "query": "label_values(logwarden_lines, source)",
             "definition": "label_values(logwarden_lines, source)"},
            {**variable, "name": "scope", "label": "scope",
             "query": "label_values(logwarden_scope_records, scope)",
             "definition": "label_values(logwarden_scope_records, scope)"},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT} ({len(PANELS)} panels)")

"""``logwarden report``: one self-contained HTML file on a period, for an auditor or a security lead.

Everything comes from the audit trail (the system of record), so a report can be made long after
the runs, anywhere the trail and its key are:

- compliance per source and scope, per day (each scorecard's ``days``);
- violations by reason, with redacted examples;
- alerts by rule and severity; incidents by severity and state; time to acknowledge and resolve
  (incident changes the flow and ``logwarden incidents ack/resolve`` recorded);
- rule coverage by control (PCI DSS, NIST 800-53, ATT&CK tags of the rules in force);
- the anomaly model in force and each detector's noise budget against its incidents a day;
- the trail's verification and the segments holding the period's records (the evidence).

Charts are matplotlib figures written as inline SVG; the page has no script and loads nothing.
"""

from __future__ import annotations

from logwarden.report.data import ReportData, gather
from logwarden.report.html import render

__all__ = ["ReportData", "gather", "render"]

"""``logwarden selftest``: canaries through the real flow, a pass/fail table per control.

Canaries: every enabled rule's positive examples, written as ECS JSON lines (one input per rule,
each event labelled ``labels.logwarden_selftest``), plus lines that break the standard. They go
through the same parsers, standard, rules and flow as production, with a scratch audit trail and
in-memory incidents (no canary reaches the real incident store or channel). Then the scratch
trail and the configured one are verified, and when Slack is configured one message marked as a
test is sent to it.
"""

from __future__ import annotations

import secrets as _random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import SecretStr

from logwarden.audit.verify import verify
from logwarden.compliance import DROP, SECRET
from logwarden.rules.evaluate import expand_example_events
from logwarden.settings import Settings
from logwarden.standard import load_profile

CANARY_LABEL = "labels.logwarden_selftest"
VIOLATION_CANARIES = {
    "malformed": '{"@timestamp": "2024-01-02T10:00:00Z", "action": "read", ',
    "missing_field": '{"@timestamp": "2024-01-02T10:00:01Z", "outcome": "success", "user": "canary"}',
    "secret": ('{"@timestamp": "2024-01-02T10:00:02Z", "action": "read", "outcome": "success", "user": "canary", '
               '"path": "/login?password=selftest-not-a-secret"}'),
}


@dataclass
class Row:
    control: str
    ok: bool
    detail: str


def canary_lines(rule_examples: list[dict]) -> list[str]:
    lines = []
    for ex in rule_examples:
        if ex.get("expect") != "alert":
            continue
        for event in expand_example_events(ex["events"]):
            doc = {k: v for k, v in event.to_dict().items() if not k.startswith("log.file.")}
            doc.setdefault("event.outcome", "success")
            # canaries travel as JSON lines, whose standard asks who did it (identity: user)
            doc.setdefault("user.name", "selftest-canary")
            doc.setdefault("event.action", "selftest")
            doc[CANARY_LABEL] = True
            lines.append(orjson.dumps(doc).decode())
        break  # one positive example a rule
    return lines


def run_selftest(settings: Settings) -> list[Row]:
    from logwarden.app import load_rule_set, run_flow

    rule_set = load_rule_set(settings)
    work = Path(tempfile.mkdtemp(prefix="lw-selftest-"))
    inputs: dict[str, Path] = {}
    for rule in rule_set.enabled():
        lines = canary_lines(rule_set.examples.get(rule.meta.id, []))
        if lines:
            path = work / f"canary-{rule.meta.id}.jsonl"
            path.write_text("\n".join(lines) + "\n")
            inputs[rule.meta.id] = path
    bad = work / "canary-violations.jsonl"  # its secret canary also raises standard.secret-in-logs
    bad.write_text("\n".join(VIOLATION_CANARIES.values()) + "\n")
    alerting = load_profile(settings.standard_profile).alerts
    drop = work / "canary-compliance.jsonl"  # a window of lines that say no action: standard.compliance-drop
    drop.write_text("".join(orjson.dumps({"@timestamp": f"2024-01-02T{11 + k // 3600:02d}:{k // 60 % 60:02d}:"
                                                        f"{k % 60:02d}Z", "user": "canary", "outcome": "success"})
                            .decode() + "\n" for k in range(alerting.min_lines)))
    canaried = {SECRET: bad, DROP: drop} if alerting.enabled else {}
    scratch = settings.model_copy(update={
        "audit_dir": work / "audit", "audit_key": SecretStr(_random.token_hex(32)),
        "audit_encryption_key": settings.audit_encryption_key, "redis_url": None, "slack_token": None,
        "slack_webhook_url": None, "workers": 1})
    violations_path = work / "violations.jsonl"
    result = run_flow(scratch, [str(p) for p in inputs.values()] + [str(bad), str(drop)], "json", alerts_path=None,
                      violations_path=violations_path)
    fired = {a.rule_id for a in result.alerts}
    rows: list[Row] = []
    by_tag: dict[str, list[str]] = {}
    for rule in rule_set.enabled():
        for tag in rule.meta.tags:
            by_tag.setdefault(tag, []).append(rule.meta.id)
        if rule.meta.id not in inputs:
            rows.append(Row(f"rule {rule.meta.id}", False, "no positive example to use as a canary"))
    for detector in canaried:  # the standard's own detectors serve controls too
        for tag in alerting.tags.get(detector, []):
            by_tag.setdefault(tag, []).append(detector)
    for tag, ids in sorted(by_tag.items()):
        missing = [i for i in ids if i not in fired]
        rows.append(Row(tag, not missing, f"{len(ids) - len(missing)}/{len(ids)} detectors fired"
                        + (f"; silent: {', '.join(missing)}" if missing else "")))
    reasons = {orjson.loads(x)["reason"] for x in violations_path.read_text().splitlines() if x}
    missing_reasons = sorted(set(VIOLATION_CANARIES) - reasons)
    rows.append(Row("standard: violations recorded", not missing_reasons,
                    "malformed, missing_field, secret recorded" if not missing_reasons
                    else f"not recorded: {', '.join(missing_reasons)}"))
    scratch_report = verify(work / "audit", scratch.audit_key.get_secret_value().encode())  # type: ignore[union-attr]
    rows.append(Row("audit: canary trail verifies", scratch_report.ok, "; ".join(scratch_report.lines())))
    if settings.audit_dir is not None and settings.audit_key is not None:
        live = verify(settings.audit_dir, settings.audit_key.get_secret_value().encode())
        rows.append(Row("audit: configured trail verifies", live.ok, "; ".join(live.lines())))
    rows.append(_notify_row(settings))
    return rows



def _notify_row(settings: Settings) -> Row:
    from logwarden.incidents.model import Incident
    from logwarden.incidents.setup import build_notifier
    from logwarden.notify.base import DeliveryError

    notifier = build_notifier(settings)
    if notifier is None:
        return Row("notify: Slack", True, "not configured (skipped)")
    test = Incident(id="SELFTEST", fingerprint="selftest|logwarden", rule_id="logwarden-selftest", severity="low",
                    entity="logwarden", description="logwarden self-test (not an incident)",
                    summary="Test message from `logwarden selftest`: notifications reach this channel.",
                    tags=["selftest"], first_seen="-", last_seen="-", count=0, created_at=0, updated_at=0)
    try:
        notifier.post(test, None)
    except DeliveryError as exc:
        return Row("notify: Slack", False, str(exc))
    return Row("notify: Slack", True, "test message delivered")

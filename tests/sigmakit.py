"""Real-shaped log lines built from a Sigma rule's own detection, for the tests of #15.

``positive(rule)`` walks the rule's parsed condition (after logwarden's field mapping) and picks
one way to satisfy it: every branch of an ``and``, the first usable branch of an ``or``, nothing
for a ``not``; a value's wildcards are dropped. ``line(source, fields)`` writes those fields as a
line of that log source (a combined-log request, a CloudTrail record, a Kubernetes audit event,
a syslog line), which the tests then read through logwarden's own parsers. ``negative`` is the
same line with the values the rule selected on replaced by ordinary ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import SigmaNull, SigmaNumber, SigmaString, SpecialChars

from logwarden.rules.sigma import _pipeline, log_source

KEYWORD = "<keyword>"  # a value without a field: where the line carries free text
AT = datetime(2026, 11, 29, 10, 0, 5, tzinfo=UTC)


class Unsatisfiable(Exception):
    pass


def _text(value: SigmaString) -> str:
    return "".join(p if isinstance(p, str) else "x" if p == SpecialChars.WILDCARD_SINGLE else "" for p in value.s)


def _pick(node: Any, web: bool) -> dict[str, Any]:
    if isinstance(node, ConditionAND):
        out: dict[str, Any] = {}
        for arg in node.args:
            for k, v in _pick(arg, web).items():
                if k in out and isinstance(v, str):  # two tests of one field: a value meeting both
                    v = f"{out[k]} {v}" if k == KEYWORD else f"{out[k]}{v}"
                out[k] = v
        return out
    if isinstance(node, ConditionOR):
        for arg in node.args:  # the first branch that a request line can carry (no spaces on the web)
            try:
                found = _pick(arg, web)
            except Unsatisfiable:
                continue
            if not (web and any(" " in str(v) for v in found.values())):
                return found
        raise Unsatisfiable("no branch of an or")
    if isinstance(node, ConditionNOT):
        return {}
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        if isinstance(value, SigmaString):
            return {str(node.field): _text(value)}
        if isinstance(value, SigmaNumber):
            return {str(node.field): value.number}
        if isinstance(value, SigmaNull):
            return {str(node.field): None}  # the field absent ("-" in a web log)
        raise Unsatisfiable(type(value).__name__)
    if isinstance(node, ConditionValueExpression):
        return {KEYWORD: _text(node.value) if isinstance(node.value, SigmaString) else str(node.value)}
    raise Unsatisfiable(type(node).__name__)


def positive(rule: Any) -> tuple[str, dict[str, Any]]:
    """The log source's name and the fields that satisfy the (field-mapped) rule."""
    src = log_source(rule.logsource.product, rule.logsource.service, rule.logsource.category)
    _pipeline(()).apply(rule)
    tree = rule.detection.parsed_condition[0].parse()
    fields = _pick(tree, src.name == "webserver")
    status = fields.get("http.response.status_code")
    if status is not None and not str(status).isdigit():  # e.g. responseStatus.code: 'ALLOW'
        raise Unsatisfiable(f"status code {status!r} is not a number: no real event carries it")
    return src.name, fields


def negative(fields: dict[str, Any]) -> dict[str, Any]:
    """The same fields with every selected value made ordinary."""
    ordinary = {"event.action": "DescribeInstances", "event.provider": "ec2.amazonaws.com",
                "http.request.method": "GET", "url.path": "/index.html", "url.query": "page=2",
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
                "http.response.status_code": 200, KEYWORD: "session opened for user alice"}
    return {k: ordinary.get(k, "ordinary") for k in fields}


def line(source: str, fields: dict[str, Any]) -> tuple[str, str]:
    """``(format, line)``: the fields as a real-shaped line of the log source."""
    f = dict(fields)
    if source == "webserver":
        path = f.get("url.path") or "/search"
        query = f.get("url.query")
        if KEYWORD in f:
            query = f"q={f[KEYWORD]}" if query is None else f"{query}&q={f[KEYWORD]}"
        target = quote(path, safe="/%?&=.:;,'()*!@$+~-_#[]{}|\\^`<>") + (f"?{query}" if query else "")
        ua = f.get("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0") or "-"
        status = f.get("http.response.status_code", 200)
        referer = f.get("http.request.referrer") or "-"
        return "combined", (f'203.0.113.9 - - [{AT:%d/%b/%Y:%H:%M:%S} +0000] "{f.get("http.request.method", "GET")} '
                            f'{target} HTTP/1.1" {status} 512 "{referer}" "{ua}"')
    if source == "aws/cloudtrail":
        record: dict[str, Any] = {
            "eventVersion": "1.08", "eventTime": AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": f.get("event.provider", "ec2.amazonaws.com"),
            "eventName": f.get("event.action", "DescribeInstances"), "awsRegion": f.get("cloud.region", "eu-west-1"),
            "sourceIPAddress": f.get("source.ip", "198.51.100.4"),
            "userAgent": f.get("user_agent.original", "aws-cli/2.15.0"),
            "userIdentity": {"type": f.get("aws.cloudtrail.user_identity.type", "IAMUser"),
                             "arn": f.get("aws.cloudtrail.user_identity.arn", "arn:aws:iam::123456789012:user/alice"),
                             "accountId": "123456789012", "userName": "alice",
                             "sessionContext": {"sessionIssuer": {
                                 "type": f.get("aws.cloudtrail.user_identity.session_context.session_issuer.type",
                                               "Role")}}},
            "eventType": f.get("aws.cloudtrail.event_type", "AwsApiCall"),
            "recipientAccountId": "123456789012"}
        if "aws.cloudtrail.error_code" in f:
            record["errorCode"] = f["aws.cloudtrail.error_code"]
        if "aws.cloudtrail.error_message" in f:
            record["errorMessage"] = f["aws.cloudtrail.error_message"]
        if "aws.cloudtrail.mfa_used" in f:
            record["additionalEventData"] = {"MFAUsed": f["aws.cloudtrail.mfa_used"]}
        if "aws.cloudtrail.console_login" in f:
            record["responseElements"] = {"ConsoleLogin": f["aws.cloudtrail.console_login"]}
        for name, key in (("request_parameters", "requestParameters"), ("response_elements", "responseElements")):
            prefix = f"aws.cloudtrail.{name}"
            for field, value in f.items():
                if field == prefix:  # the whole object, as text: a value somewhere in it
                    record.setdefault(key, {})["detail"] = value
                elif field.startswith(prefix + "."):
                    node = record.setdefault(key, {})
                    *parents, leaf = field[len(prefix) + 1:].split(".")
                    for part in parents:
                        node = node.setdefault(part, {})
                    node[leaf] = value
        return "cloudtrail", json.dumps(record)
    if source == "kubernetes/audit":
        obj = {k: v for k, v in (("resource", f.get("k8s.object.resource", "pods")),
                                 ("subresource", f.get("k8s.object.subresource")),
                                 ("namespace", f.get("orchestrator.namespace", "default")),
                                 ("name", f.get("orchestrator.resource.name", "web-1")),
                                 ("apiGroup", f.get("k8s.object.api_group"))) if v is not None}
        event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "a1b2c3",
                 "stage": "ResponseComplete", "requestURI": f.get("url.path", "/api/v1/namespaces/default/pods"),
                 "verb": f.get("event.action", "get"), "user": {"username": f.get("user.name", "alice")},
                 "sourceIPs": ["10.0.0.5"], "userAgent": f.get("user_agent.original", "kubectl/v1.31.0"),
                 "objectRef": obj, "responseStatus": {"code": f.get("http.response.status_code", 200)},
                 "requestReceivedTimestamp": AT.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}
        return "k8s_audit", json.dumps(event)
    message = f.get(KEYWORD, f.get("message", "session opened for user alice"))
    return "syslog", f"{AT:%b %d %H:%M:%S} host1 bash[4242]: {message}"

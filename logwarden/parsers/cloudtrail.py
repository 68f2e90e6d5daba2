"""AWS CloudTrail records: one JSON object a line, or whole ``{"Records": [...]}`` files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from logwarden.errors import ParseError
from logwarden.event import Event
from logwarden.parsers.base import ParserOptions, as_int, as_object, as_str, load_json_object
from logwarden.timeutil import parse_any


class CloudTrail:
    name: ClassVar[str] = "cloudtrail"

    def __init__(self, options: ParserOptions) -> None:
        self._options = options

    def sniff(self, line: str) -> bool:
        return line.startswith("{") and (
            '"eventSource"' in line or '"Records"' in line) and '"eventName"' in line

    @staticmethod
    def expand_document(text: str) -> list[str] | None:
        """Records of a whole ``{"Records": [...]}`` file, each as one JSON line; else None."""
        head = text.lstrip()[:200]
        if not head.startswith("{") or '"Records"' not in head:
            return None
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        records = doc.get("Records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            return None
        return [orjson.dumps(r).decode() for r in records]

    def parse(self, line: str, source: str, lineno: int) -> Event:
        doc = load_json_object(line)
        if "eventName" not in doc or "eventSource" not in doc:
            raise ParseError("not a CloudTrail record (no eventName/eventSource)")
        ident = as_object(doc, "userIdentity")
        raw_ts = doc.get("eventTime") or doc.get("@timestamp")
        error = doc.get("errorCode")
        response = doc.get("responseElements")
        outcome = "failure" if error else "success"
        if isinstance(response, dict) and "ConsoleLogin" in response:
            outcome = "success" if response["ConsoleLogin"] == "Success" else "failure"
        params = doc.get("requestParameters")
        params = params if isinstance(params, dict) else {}
        added = doc.get("additionalEventData")
        added = added if isinstance(added, dict) else {}
        bucket, key = as_str(params.get("bucketName")), as_str(params.get("key"))
        resource = "/".join(p for p in (bucket, key) if p) or _first_resource(doc)
        extra: dict[str, Any] = {
            "cloud.provider": "aws",
            "event.provider": as_str(doc.get("eventSource")),
        }
        for k, v in (("cloud.region", as_str(doc.get("awsRegion"))),
                     ("cloud.account.id", as_str(ident.get("accountId") or doc.get("recipientAccountId"))),
                     ("aws.cloudtrail.user_identity.type", as_str(ident.get("type"))),
                     ("aws.cloudtrail.user_identity.arn", as_str(ident.get("arn"))),
                     ("aws.cloudtrail.error_code", as_str(error)),
                     ("aws.cloudtrail.error_message", as_str(doc.get("errorMessage"))),
                     ("aws.cloudtrail.event_type", as_str(doc.get("eventType"))),
                     ("aws.cloudtrail.console_login", as_str(response.get("ConsoleLogin"))
                      if isinstance(response, dict) else None),
                     ("aws.cloudtrail.user_identity.session_context.session_issuer.type", _issuer_type(ident)),
                     ("aws.cloudtrail.read_only", doc.get("readOnly")),
                     ("aws.s3.bucket.name", bucket),
                     ("aws.cloudtrail.mfa_used", as_str(added.get("MFAUsed")))):
            if v is not None:
                extra[k] = v
        for name, value in (("request_parameters", doc.get("requestParameters")),
                            ("response_elements", response)):
            if isinstance(value, dict) and value:  # what rules (Sigma's among them) look into
                flatten(value, f"aws.cloudtrail.{name}", extra)
        return Event(
            timestamp=parse_any(raw_ts) if raw_ts else None,
            source=source,
            line=lineno,
            dataset=self.name,
            action=as_str(doc.get("eventName")),
            outcome=outcome,
            category="authentication" if doc.get("eventName") == "ConsoleLogin" else "iam",
            user_name=_principal(ident),
            source_ip=as_str(doc.get("sourceIPAddress")),
            user_agent=as_str(doc.get("userAgent")),
            bytes=as_int(added.get("bytesTransferredOut")),
            resource=resource,
            event_id=as_str(doc.get("eventID")),
            extra=extra,
        )


def _principal(ident: Mapping[str, Any]) -> str | None:
    if ident.get("userName"):
        return str(ident["userName"])
    issuer = as_object(as_object(ident, "sessionContext"), "sessionIssuer")
    if issuer.get("userName"):
        return str(issuer["userName"])
    arn = ident.get("arn")
    if arn:
        return str(arn).rsplit("/", 1)[-1] if "/" in str(arn) else str(arn)
    return as_str(ident.get("principalId") or ident.get("invokedBy"))


def _first_resource(doc: dict[str, Any]) -> str | None:
    resources = doc.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], dict):
        return as_str(resources[0].get("ARN"))
    return None


def _issuer_type(ident: dict[str, Any]) -> str | None:
    context = ident.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
    return as_str(issuer.get("type")) if isinstance(issuer, dict) else None


MAX_LEAVES = 64  # per record: a huge request (a policy document) keeps its first fields


def flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """A request's or response's fields under ``prefix`` with their dotted paths as CloudTrail
    names them (``aws.cloudtrail.request_parameters.containerDefinitions.command``); a path met
    more than once (in a list of objects) holds the list of its values. The whole object is also
    kept under ``prefix`` itself, as its ``name=value`` pairs in one text (values as they are,
    not JSON-escaped: a policy document's ``"s3:GetObject"`` is found with its quotes)."""
    text: list[str] = []
    leaves = 0

    def walk(v: Any, path: str) -> None:
        nonlocal leaves
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{path}.{k}")
        elif isinstance(v, list):
            for item in v:
                walk(item, path)
        elif v is not None and leaves < MAX_LEAVES:
            leaves += 1
            text.append(f"{path.rsplit('.', 1)[-1]}={v}")
            if path in out:
                held = out[path]
                out[path] = [*held, v] if isinstance(held, list) else [held, v]
            else:
                out[path] = v

    walk(value, prefix)
    out[prefix] = " ".join(text)[:4096]

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
        get = doc.get
        ident = as_object(doc, "userIdentity")
        raw_ts = get("eventTime") or get("@timestamp")
        error = get("errorCode")
        response = get("responseElements")
        if not isinstance(response, dict):
            response = None
        outcome = "failure" if error else "success"
        if response is not None and "ConsoleLogin" in response:
            outcome = "success" if response["ConsoleLogin"] == "Success" else "failure"
        params = get("requestParameters")
        params = params if isinstance(params, dict) else {}
        added = get("additionalEventData")
        added = added if isinstance(added, dict) else {}
        bucket, key = as_str(params.get("bucketName")), as_str(params.get("key"))
        resource = "/".join(filter(None, (bucket, key))) or _first_resource(doc)
        extra: dict[str, Any] = {"cloud.provider": "aws", "event.provider": as_str(get("eventSource"))}
        for k, v in (("cloud.region", as_str(get("awsRegion"))),
                     ("cloud.account.id", as_str(ident.get("accountId") or get("recipientAccountId"))),
                     ("aws.cloudtrail.user_identity.type", as_str(ident.get("type"))),
                     ("aws.cloudtrail.user_identity.arn", as_str(ident.get("arn"))),
                     ("aws.cloudtrail.error_code", as_str(error)),
                     ("aws.cloudtrail.error_message", as_str(get("errorMessage"))),
                     ("aws.cloudtrail.event_type", as_str(get("eventType"))),
                     ("aws.cloudtrail.console_login", as_str(response.get("ConsoleLogin"))
                      if response is not None else None),
                     ("aws.cloudtrail.user_identity.session_context.session_issuer.type", _issuer_type(ident)),
                     ("aws.cloudtrail.read_only", get("readOnly")),
                     ("aws.s3.bucket.name", bucket),
                     ("aws.cloudtrail.mfa_used", as_str(added.get("MFAUsed")))):
            if v is not None:
                extra[k] = v
        for name, value in (("request_parameters", params), ("response_elements", response)):
            if value:  # what rules (Sigma's among them) look into
                flatten(value, f"aws.cloudtrail.{name}", extra)
        return Event(  # positionally: see EVENT_ORDER
            parse_any(raw_ts) if raw_ts else None, source, lineno, self.name,  # timestamp, source, line, dataset
            as_str(get("eventName")), outcome,  # action, outcome
            "authentication" if get("eventName") == "ConsoleLogin" else "iam",  # category
            _principal(ident),  # user_name
            as_str(get("sourceIPAddress")), as_str(get("userAgent")),  # source_ip, user_agent
            None, None, None, None,  # http_method, url_path, url_query, status_code
            as_int(added.get("bytesTransferredOut")), resource,  # bytes, resource
            None, as_str(get("eventID")),  # host_name, event_id
            extra,  # extra
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

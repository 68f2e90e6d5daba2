"""Kubernetes audit events, one JSON object a line: ``audit.k8s.io/v1`` and ``v1beta1`` (whose
early events carry a top-level ``timestamp``), events forwarded without ``apiVersion`` (as some
collectors and older tools do) that still have ``kind: Event``, ``auditID``, ``verb`` and ``user``,
and ``EventList`` documents (what the API server's audit webhook backend sends: one line holding
many events, each an event of its own referenced by its line and item)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from logwarden.errors import ParseError
from logwarden.event import ITEM, Event
from logwarden.parsers.base import (
    ParserOptions,
    as_int,
    as_list,
    as_object,
    as_str,
    load_json_object,
    outcome_from_status,
)
from logwarden.timeutil import parse_any


class K8sAudit:
    name: ClassVar[str] = "k8s_audit"

    def __init__(self, options: ParserOptions) -> None:
        self._options = options

    def sniff(self, line: str) -> bool:
        return line.startswith("{") and ("audit.k8s.io/" in line or '"auditID"' in line)

    def parse(self, line: str, source: str, lineno: int) -> Event:
        doc = load_json_object(line)
        version = doc.get("apiVersion")
        if version is None:
            if doc.get("kind") != "Event" or not all(doc.get(k) for k in ("auditID", "verb", "user")):
                raise ParseError("not a Kubernetes audit event (no apiVersion, and not an Event with "
                                 "auditID, verb and user)")
        elif not str(version).startswith("audit.k8s.io/"):
            raise ParseError("not a Kubernetes audit event (apiVersion is not audit.k8s.io/*)")
        if doc.get("kind") == "EventList":
            raise ParseError("an EventList holds several events: read it with parse_many")
        return self._event(doc, source, lineno)

    def parse_many(self, line: str, source: str, lineno: int) -> list[tuple[Event | ParseError, str]] | None:
        """The items of an ``EventList`` line, each an event (or the error it gives, so one bad
        item costs only itself) with the item's own JSON text; None for a line that holds one
        event."""
        if '"EventList"' not in line:
            return None
        doc = load_json_object(line)
        if doc.get("kind") != "EventList":
            return None
        if not str(doc.get("apiVersion", "audit.k8s.io/")).startswith("audit.k8s.io/"):
            raise ParseError("not a Kubernetes audit EventList (apiVersion is not audit.k8s.io/*)")
        items = doc.get("items")
        if not isinstance(items, list):
            raise ParseError("an EventList without a list of items")
        out: list[tuple[Event | ParseError, str]] = []
        for n, item in enumerate(items, 1):
            text = orjson.dumps(item).decode()
            try:
                if not isinstance(item, dict) or not all(item.get(k) for k in ("auditID", "verb", "user")):
                    raise ParseError(f"item {n} is not an audit event (no auditID, verb and user)")
                out.append((self._event(item, source, lineno, n), text))
            except ParseError as exc:
                out.append((exc if str(exc).startswith("item ") else type(exc)(f"item {n}: {exc}"), text))
        return out

    def _event(self, doc: dict[str, Any], source: str, lineno: int, item: int | None = None) -> Event:
        get = doc.get
        raw_ts = get("requestReceivedTimestamp") or get("stageTimestamp") or get("timestamp")
        user = as_object(doc, "user")
        ips = as_list(doc, "sourceIPs")
        obj = as_object(doc, "objectRef")
        status = as_object(doc, "responseStatus")
        code = as_int(status.get("code"))
        uri = as_str(get("requestURI")) or ""
        path, _, query = uri.partition("?")
        decision = as_object(doc, "annotations").get("authorization.k8s.io/decision")
        outcome = outcome_from_status(code)
        if outcome is None and decision:
            outcome = "success" if decision == "allow" else "failure"
        resource, subresource = as_str(obj.get("resource")), obj.get("subresource")
        resource_type = f"{resource}/{subresource}" if resource and subresource else resource
        namespace, name = as_str(obj.get("namespace")), as_str(obj.get("name"))
        extra: dict[str, Any] = {"orchestrator.type": "kubernetes"}
        if item is not None:
            extra[ITEM] = item
        for key, value in (("orchestrator.namespace", namespace),
                           ("orchestrator.resource.type", resource_type),
                           ("orchestrator.resource.name", name),
                           ("orchestrator.api_version", as_str(obj.get("apiVersion"))),
                           ("user.roles", user.get("groups") or None),
                           ("k8s.object.resource", resource),
                           ("k8s.object.subresource", as_str(subresource)),
                           ("k8s.object.api_group", as_str(obj.get("apiGroup"))),
                           ("k8s.audit.stage", as_str(get("stage"))),
                           ("k8s.audit.level", as_str(get("level")))):
            if value is not None:
                extra[key] = value
        request = get("requestObject")
        if isinstance(request, dict):
            role_ref = request.get("roleRef")
            if isinstance(role_ref, dict) and role_ref.get("name"):
                extra["k8s.request.role_ref"] = str(role_ref["name"])
            subjects = request.get("subjects")
            if isinstance(subjects, list):
                extra["k8s.request.subjects"] = [str(s.get("name")) for s in subjects
                                                 if isinstance(s, dict)]
        return Event(  # positionally: see EVENT_ORDER
            parse_any(raw_ts) if raw_ts else None, source, lineno, self.name,  # timestamp, source, line, dataset
            as_str(get("verb")), outcome,  # action, outcome
            "iam" if resource_type and "binding" in resource_type else "configuration",  # category
            as_str(user.get("username")),  # user_name
            as_str(ips[0]) if ips else None,  # source_ip
            as_str(get("userAgent")),  # user_agent
            None, path or None, query or None,  # http_method, url_path, url_query
            code, None,  # status_code, bytes
            "/".join(filter(None, (namespace, resource_type, name))) or None,  # resource
            None, as_str(get("auditID")),  # host_name, event_id
            extra,  # extra
        )

"""The one normalized event type, with Elastic Common Schema (ECS) field names.

Slotted and flat on purpose: millions of these are built per minute, so the common
ECS fields are attributes and the rare ones (``cloud.*``, ``orchestrator.*``, bucket
and table names, ...) go into ``extra`` keyed by their dotted ECS name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple

OUTCOMES = ("success", "failure", "unknown")
ITEM = "log.file.item"  # extra: which record of a line that holds several (a Kubernetes EventList), from 1


@dataclass(slots=True)
class Event:
    timestamp: datetime | None  # tz-aware UTC once the standard check has passed it
    source: str  # log.file.path or stream name
    line: int  # 1-based line (or record) number within the source
    dataset: str  # parser that produced it: nginx, sshd, k8s_audit, ...
    action: str | None = None
    outcome: str | None = None
    category: str | None = None
    user_name: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    http_method: str | None = None
    url_path: str | None = None
    url_query: str | None = None
    status_code: int | None = None
    bytes: int | None = None
    resource: str | None = None  # the thing touched: table, bucket/key, ns/kind/name, host
    host_name: str | None = None
    event_id: str | None = None  # the source's own id when it has one
    extra: dict[str, Any] | None = None
    # The ids of the rules it is relevant to, when the rule stage's router has asked them all
    # (``RuleIndex.route``): a key's engine then folds it into those rules only. None: all.
    relevant: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Events cross between workers pickled: a plain tuple of the fields is ~30% cheaper
        # than the generic path for slotted dataclasses.
        return Event, _FIELDS(self)

    @property
    def id(self) -> str:
        """``event.id``: the source's own id, else derived from source, line and dataset."""
        if self.event_id:
            return self.event_id
        key = f"{self.source}\x00{self.line}\x00{self.dataset}"
        if self.extra and (item := self.extra.get(ITEM)) is not None:
            key += f"\x00{item}"
        return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()

    @property
    def ref(self) -> str:
        """``path:line``, and ``#item`` for one of several records on a line."""
        item = self.extra.get(ITEM) if self.extra else None
        return f"{self.source}:{self.line}" if item is None else f"{self.source}:{self.line}#{item}"

    def get(self, name: str) -> Any:
        """Value of an ECS field by its dotted name (``user.name``), None when absent."""
        getter = _GETTERS.get(name)
        if getter is not None:
            return getter(self)
        return self.extra.get(name) if self.extra else None

    @staticmethod
    def getter(name: str) -> Callable[[Event], Any]:
        """A fast accessor for one ECS field, for code that reads it for every event."""
        found = _GETTERS.get(name)
        if found is not None:
            return found
        return lambda e: e.extra.get(name) if e.extra else None

    @staticmethod
    def all_set(names: list[str]) -> Callable[[Event], bool]:
        """A fast test that every one of these fields is set (one C call when they are all
        attributes, as required fields mostly are)."""
        attrs = [_ATTRS.get(n) for n in names]
        if names and all(attrs) and "event.id" not in names:
            get = attrgetter(*attrs)  # type: ignore[arg-type]
            if len(attrs) == 1:
                return lambda e: get(e) is not None
            return lambda e: None not in get(e)
        getters = [Event.getter(n) for n in names]
        return lambda e: all(g(e) is not None for g in getters)

    @classmethod
    def from_ecs(cls, doc: dict[str, Any], source: str = "<example>", line: int = 0) -> Event:
        """An event from an ECS document (rule examples, canaries); unknown names go to extra."""
        from logwarden.timeutil import parse_any

        event = cls(timestamp=None, source=source, line=line, dataset=str(doc.get("event.dataset", "example")))
        for name, value in doc.items():
            attr = _ATTRS.get(name) if name not in ("log.file.path", "log.file.line") else None
            if name == "@timestamp":
                event.timestamp = parse_any(value) if value is not None else None
            elif name == "event.id":
                event.event_id = str(value)
            elif attr is not None:
                setattr(event, attr, value)
            elif name not in ("log.file.path", "log.file.line"):
                event.extra = event.extra or {}
                event.extra[name] = value
        return event

    def to_dict(self) -> dict[str, Any]:
        """ECS document with only the fields that are set."""
        out: dict[str, Any] = {}
        for name, getter in _GETTERS.items():
            value = getter(self)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        if self.extra:
            out.update(self.extra)
        return out


# ECS name -> attribute: the single place that maps our attributes to ECS names.
_ATTRS: dict[str, str] = {
    "@timestamp": "timestamp",
    "event.action": "action",
    "event.outcome": "outcome",
    "event.category": "category",
    "event.dataset": "dataset",
    "user.name": "user_name",
    "source.ip": "source_ip",
    "user_agent.original": "user_agent",
    "http.request.method": "http_method",
    "url.path": "url_path",
    "url.query": "url_query",
    "http.response.status_code": "status_code",
    "http.response.body.bytes": "bytes",
    "resource": "resource",
    "host.name": "host_name",
    "log.file.path": "source",
    "log.file.line": "line",
}
_GETTERS: dict[str, Callable[[Event], Any]] = {name: attrgetter(attr) for name, attr in _ATTRS.items()}
_GETTERS["event.id"] = lambda e: e.id

ECS_FIELDS = frozenset(_GETTERS)
# Names the parsers put into ``extra``; with ECS_FIELDS, what rule conditions may name
# (plus any ``labels.*`` a user maps in). A typo in a rule is then a load error.
EXTRA_FIELDS = frozenset({
    ITEM, "user.invalid", "user.roles", "user.target.name", "ssh.method", "event.repeat_count",
    "event.provider", "process.command_line", "process.tty",
    "orchestrator.type", "orchestrator.namespace", "orchestrator.resource.type",
    "orchestrator.resource.name", "orchestrator.api_version", "k8s.audit.stage", "k8s.audit.level",
    "k8s.request.role_ref", "k8s.request.subjects",
    "cloud.provider", "cloud.region", "cloud.account.id", "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.user_identity.arn", "aws.cloudtrail.error_code", "aws.cloudtrail.read_only",
    "aws.cloudtrail.mfa_used", "aws.s3.bucket.name", "aws.cloudtrail.error_message", "aws.cloudtrail.event_type",
    "aws.cloudtrail.console_login", "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    "k8s.object.resource", "k8s.object.subresource", "k8s.object.api_group", "message", "http.request.referrer",
})


# Prefixes of fields parsers name from the record itself (a CloudTrail request's own fields).
EXTRA_PREFIXES = ("labels.", "aws.cloudtrail.request_parameters", "aws.cloudtrail.response_elements")


class EventBatch(NamedTuple):
    """A chunk's compliant (or redacted) events on their way to the sinks that archive every
    event: one item for the chunk, not one per event (each item costs the dataflow's merge,
    filters and routing)."""

    events: list[Event]


def known_field(name: str) -> bool:
    return name in ECS_FIELDS or name in EXTRA_FIELDS or name.startswith(EXTRA_PREFIXES)


_FIELDS = attrgetter(*(f.name for f in fields(Event)))

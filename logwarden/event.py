"""The one normalized event type, with Elastic Common Schema (ECS) field names.

Slotted and flat on purpose: millions of these are built per minute, so the common
ECS fields are attributes and the rare ones (``cloud.*``, ``orchestrator.*``, bucket
and table names, ...) go into ``extra`` keyed by their dotted ECS name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

OUTCOMES = ("success", "failure", "unknown")


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

    @property
    def id(self) -> str:
        """``event.id``: the source's own id, else derived from source, line and dataset."""
        if self.event_id:
            return self.event_id
        digest = hashlib.blake2b(
            f"{self.source}\x00{self.line}\x00{self.dataset}".encode(), digest_size=10
        )
        return digest.hexdigest()

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.line}"

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


def _attr(name: str) -> Callable[[Event], Any]:
    return attrgetter(name)


# ECS name -> accessor; the single place that maps our attributes to ECS.
_GETTERS: dict[str, Callable[[Event], Any]] = {
    "@timestamp": _attr("timestamp"),
    "event.id": lambda e: e.id,
    "event.action": _attr("action"),
    "event.outcome": _attr("outcome"),
    "event.category": _attr("category"),
    "event.dataset": _attr("dataset"),
    "user.name": _attr("user_name"),
    "source.ip": _attr("source_ip"),
    "user_agent.original": _attr("user_agent"),
    "http.request.method": _attr("http_method"),
    "url.path": _attr("url_path"),
    "url.query": _attr("url_query"),
    "http.response.status_code": _attr("status_code"),
    "http.response.body.bytes": _attr("bytes"),
    "resource": _attr("resource"),
    "host.name": _attr("host_name"),
    "log.file.path": _attr("source"),
    "log.file.line": _attr("line"),
}

ECS_FIELDS = frozenset(_GETTERS)

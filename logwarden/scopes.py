"""Compliance scopes (#16): the standard profile names scopes by resource and source globs

    scopes:
      cardholder-data:
        resources: ["payments", "invoices", "customer-exports/*"]
        sources: ["*/payments/*"]

and each event that falls in one carries it in ``labels.scope`` (a list): rules can use it
(``{field: labels.scope, contains: cardholder-data}``), and so can ``audit search --scope`` and
``evidence --scope`` over the trail. A source's scopes are found once; a resource's once per
distinct value (a bounded memo), so an event costs a dictionary lookup.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

MEMO = 4096  # distinct resources remembered per source


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resources: list[str] = []  # globs over the event's ``resource``
    sources: list[str] = []  # globs over its source (file path or stream name)

    @field_validator("resources", "sources")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        if any(not isinstance(g, str) or not g for g in value):
            raise ValueError("a scope's resources and sources are non-empty glob strings")
        return value


def _compiled(globs: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None


class ScopeLabeler:
    """The scopes of one source's events."""

    def __init__(self, scopes: dict[str, Scope], source: str) -> None:
        self._whole = tuple(name for name, s in scopes.items()
                            if (rx := _compiled(s.sources)) is not None and rx.match(source))
        self._by_resource = [(name, rx) for name, s in scopes.items()
                             if name not in self._whole and (rx := _compiled(s.resources)) is not None]
        self._memo: dict[str, tuple[str, ...]] = {}

    @property
    def whole(self) -> tuple[str, ...]:
        """The scopes every record of this source is in (by its source globs)."""
        return self._whole

    @property
    def active(self) -> bool:
        return bool(self._whole or self._by_resource)

    def scopes_of(self, resource: str | None) -> tuple[str, ...]:
        """The scopes of a record of this source touching ``resource``."""
        scopes = self._whole
        if resource is not None and self._by_resource:
            found = self._memo.get(resource)
            if found is None:
                found = tuple(name for name, rx in self._by_resource if rx.match(resource))
                if len(self._memo) < MEMO:
                    self._memo[resource] = found
            scopes = scopes + found if found else scopes
        return scopes

    def label(self, event: Any) -> None:
        """Set ``labels.scope`` on the event when it falls in a scope."""
        scopes = self.scopes_of(event.resource)
        if scopes:
            event.extra = event.extra or {}
            event.extra["labels.scope"] = list(scopes)

    def label_rows(self, resources: list[Any], extras: list[dict[str, Any] | None]) -> list[tuple[str, ...]]:
        """``label`` of a batch's rows read as columns (their ``resource`` and ``extra``
        columns, the latter set in place): each row's scopes, each distinct resource asked once."""
        found = {r: self.scopes_of(r) for r in dict.fromkeys(resources)}
        out = list(map(found.__getitem__, resources))
        for row in [row for row, scopes in enumerate(out) if scopes] if any(found.values()) else ():
            extras[row] = {**(extras[row] or {}), "labels.scope": list(out[row])}
        return out

"""``new_term``: a value of ``field`` never seen for this key after its learning period (a
service account used from a new address or client).

Terms seen during the first ``learn`` of a key's activity are learned silently. Known terms
can be seeded with ``known: {entity: [terms]}`` or from a baseline JSON-lines file of
``{"entity": ..., "term": ...}`` (``seed_file``). Each key keeps at most ``max_terms`` terms.
With a ``store`` (Redis, when configured) learned terms are written through and read back
when a key is first seen, so they survive restarts and are shared by workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, Literal

import orjson
from pydantic import Field

from logwarden.alerts import Alert, make_alert_id
from logwarden.errors import ConfigError
from logwarden.event import Event
from logwarden.networks import DEFAULT_INTERNAL, Net, in_networks, parse_networks, prefix_of
from logwarden.rules.base import Params, Predicate, RuleMeta
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.rules.terms import STARTED, TermStore
from logwarden.rules.threshold import Duration


class NewTermParams(Params):
    field: str
    learn: Duration = timedelta(days=7)
    known: dict[str, list[str]] = {}
    seed_file: Path | None = None
    max_terms: int = Field(1000, ge=1)
    granularity: Literal["address", "/24", "/16", "network"] = "address"


@dataclass
class NewTermState:
    terms: set[str] = field(default_factory=set)
    started: datetime | None = None
    # Terms read back from the store: the event that taught each (see ``logwarden.rules.terms``).
    taught_by: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewTermRule:
    type: ClassVar[str] = "new_term"
    Params: ClassVar[type[NewTermParams]] = NewTermParams
    meta: RuleMeta
    where: Predicate
    field: str
    learn: timedelta
    known: dict[str, frozenset[str]]
    max_terms: int
    granularity: str = "address"
    # What "network" granularity calls internal (the loader sets LOGWARDEN_INTERNAL_NETWORKS).
    internal_networks: tuple[Net, ...] | None = None
    store: TermStore | None = field(default=None, compare=False)

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: NewTermParams) -> NewTermRule:
        known = {k: set(v) for k, v in params.known.items()}
        if params.seed_file is not None:
            try:
                for line in params.seed_file.read_text().splitlines():
                    if line.strip():
                        doc = orjson.loads(line)
                        known.setdefault(str(doc["entity"]), set()).add(str(doc["term"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"seed_file {params.seed_file}: {exc}") from None
        return cls(meta, where, params.field, params.learn,
                   {k: frozenset(v) for k, v in known.items()}, params.max_terms, params.granularity,
                   parse_networks(DEFAULT_INTERNAL) if params.granularity == "network" else None)

    def term_of(self, value: object) -> str:
        text = str(value)
        if self.granularity == "address":
            return text
        if self.granularity == "network":
            return "internal" if in_networks(text, self.internal_networks or ()) else "external"
        return prefix_of(text, int(self.granularity[1:]))

    def relevant(self, event: Event) -> bool:
        return self.where(event) and event.get(self.field) is not None

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols) & cols.present(self.field)

    def init(self) -> NewTermState:
        return NewTermState()

    def fold(self, state: NewTermState, entity: str, event: Event) -> Alert | None:
        value = event.get(self.field)
        if value is None or not holds(self, event):
            return None
        term, ts = self.term_of(value), event.timestamp
        assert ts is not None
        if state.started is None:
            seeded = set(self.known.get(entity, ()))
            # Seeded from a baseline (known, seed_file): nothing left to learn.
            state.started = ts - self.learn - timedelta(seconds=1) if seeded else ts
            if self.store is not None:
                state.taught_by = self.store.terms(self.meta.id, entity)
                began = state.taught_by.pop(STARTED, None)
                if began is not None:  # learned before (a restart, a rerun, another worker): as it was
                    state.started = datetime.fromisoformat(began)
                else:
                    self.store.add(self.meta.id, entity, STARTED, state.started.isoformat())
                seeded |= set(state.taught_by)
            state.terms.update(seeded)
        if term in state.terms:
            teacher = state.taught_by.pop(term, None)
            if teacher is None or teacher != event.id:  # (the id, a hash, only when it may be the teacher)
                return None
            # A replay after a crash of the event that taught this term: judge it as then.
        elif len(state.terms) < self.max_terms:
            state.terms.add(term)
            if self.store is not None:
                self.store.add(self.meta.id, entity, term, event.id)
        if ts - state.started <= self.learn:
            return None
        alert_id = make_alert_id(self.meta.id, entity, f"{self.field}={term}")
        return Alert(alert_id, self.meta.id, self.meta.severity, entity, ts, ts, 1,
                     f"{self.meta.description}: {self.field} {value!r}"
                     f"{f' ({term})' if term != str(value) else ''} never seen for {entity}",
                     [event.id], list(self.meta.tags), 0, self.meta.description)

    def close(self, state: NewTermState, entity: str, watermark: datetime | None) -> Alert | None:
        return None

    def idle(self, state: NewTermState, watermark: datetime) -> bool:
        return False  # the learned terms are the state: kept while the key lives

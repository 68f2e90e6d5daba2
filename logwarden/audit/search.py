"""``logwarden audit search`` (#16): the records of the trail that a question asks for.

A ``Query`` filters by time (the record's event time), entity, user, resource and source (globs),
scope, action, outcome, rule and class. Segments whose seal puts them wholly outside the period,
or whose sources all miss a ``--source`` glob, are not read at all; so a one-hour question over a
month of trail reads the few segments of that hour. Each segment a hit comes from is verified
(its chain, anchored at the end of the segment before it, and its HMACs), and each hit says
whether its segment verified. Encrypted records are opened with the key.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from logwarden.audit.chain import GENESIS
from logwarden.audit.trail import CLASSES, Cipher, segment_number, segments
from logwarden.audit.verify import ClassReport, _verify_segment
from logwarden.timeutil import isoformat

# Records about the trail itself (or a run, a scorecard): only a question with no filter on what
# an event or a decision is about returns them.
HOUSEKEEPING = ("seal", "purge", "repair", "run", "access", "scorecard")


@dataclass(frozen=True)
class Query:
    start: datetime | None = None
    end: datetime | None = None
    entity: str | None = None
    user: str | None = None
    resource: str | None = None  # a glob
    source: str | None = None  # a glob
    scope: str | None = None
    action: str | None = None
    outcome: str | None = None
    rule: str | None = None
    classes: tuple[str, ...] = CLASSES

    @property
    def period(self) -> tuple[str | None, str | None]:
        """The period as the trail writes times (ISO 8601), for string comparison."""
        return (isoformat(self.start) if self.start is not None else None,
                isoformat(self.end) if self.end is not None else None)

    def needles(self) -> list[bytes]:
        """Strings a matching record's line must hold (as JSON writes them): a line without one
        of them is passed over before it is parsed. Globs and the period are not literal."""
        return [orjson.dumps(v)[1:-1] for v in (self.entity, self.user, self.scope, self.action, self.outcome,
                                                 self.rule) if v is not None]

    @property
    def about(self) -> bool:
        """Does it ask about what records are about (not only when)?"""
        return any(v is not None for v in (self.entity, self.user, self.resource, self.source, self.scope,
                                          self.action, self.outcome, self.rule))

    def wants(self, kind: str, at: str, data: Any, period: tuple[str | None, str | None] | None = None) -> bool:
        """``period``: ``self.period``, when the caller asks for many records."""
        first, last = period or self.period
        if (first is not None and at < first) or (last is not None and at > last):
            return False
        if kind in HOUSEKEEPING:
            return kind in ("run", "scorecard") and not self.about
        if not isinstance(data, dict):
            return not self.about
        if self.entity is not None and self.entity not in _entities(data) and \
                self.entity not in str(data.get("excerpt", "")):
            return False
        if self.user is not None and self.user not in (data.get("user.name"), *_list(data.get("user.target.name"))) \
                and not (kind != "event" and self.user in _entities(data)):
            return False
        if self.resource is not None and not _glob(data.get("resource"), self.resource):
            return False
        if self.source is not None and not _glob(data.get("log.file.path") or data.get("source"), self.source):
            return False
        if self.scope is not None and self.scope not in _list(data.get("labels.scope")):
            return False
        if self.action is not None and data.get("event.action") != self.action:
            return False
        if self.outcome is not None and data.get("event.outcome") != self.outcome:
            return False
        return self.rule is None or self.rule == data.get("rule_id") or self.rule in _list(data.get("rules"))

    def may_hold(self, seal: dict[str, Any] | None) -> bool:
        """False when a segment's seal shows none of its records can match: all outside the
        period, or none from a source the ``source`` glob names (records without a source, such
        as alerts, are not about a source either)."""
        if seal is None:
            return True  # the active segment: read it
        first, last = seal.get("first_at"), seal.get("last_at")
        start, end = self.period
        if first and last and ((start is not None and last < start) or (end is not None and first > end)):
            return False
        sources = seal.get("sources")
        return not (self.source is not None and isinstance(sources, dict) and
                    not any(fnmatch.fnmatchcase(s, self.source) for s in sources))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _entities(data: dict[str, Any]) -> set[Any]:
    return {data.get("entity"), data.get("user.name"), data.get("source.ip"), *_list(data.get("entities"))}


def _glob(value: Any, pattern: str) -> bool:
    return value is not None and fnmatch.fnmatchcase(str(value), pattern)


@dataclass
class Hit:
    cls: str
    segment: str
    seq: int
    kind: str
    at: str
    data: Any
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "segment": self.segment, "seq": self.seq, "kind": self.kind, "at": self.at,
                "verified": self.verified, "data": self.data}


@dataclass
class Result:
    hits: list[Hit] = field(default_factory=list)
    read: int = 0  # segments read
    skipped: int = 0  # segments their seals ruled out
    problems: list[str] = field(default_factory=list)  # what verification found in the segments read


def seal_of(path: Path) -> dict[str, Any] | None:
    """A segment's seal (its last record), read from the end of the file only; None: not sealed."""
    rec = _last(path)
    return rec.get("data") if isinstance(rec, dict) and rec.get("kind") == "seal" else None


def search(root: Path, query: Query, key: bytes, cipher: Cipher | None = None, skip: bool = True) -> Result:
    """The records ``query`` asks for, oldest first per class; ``skip=False`` reads every segment
    (the full scan a test compares with)."""
    result = Result()
    # A record with nothing to say about what is asked can still be asked for by time alone
    # (a run, a scorecard): the line filter applies only when the question is about something.
    needles = query.needles() if query.about else []
    for cls in query.classes:
        segs = segments(root / cls)
        for i, seg in enumerate(segs):
            if skip and not query.may_hold(seal_of(seg)):
                result.skipped += 1
                continue
            result.read += 1
            period = query.period
            hits = [Hit(cls, seg.name, rec["seq"], rec["kind"], rec["at"], data, True)
                    for rec, data in _records(seg, cipher, needles if cipher is None else [])
                    if query.wants(rec["kind"], rec["at"], data, period)]
            if hits:
                problems = _verify(seg, segs[i - 1] if i else None, key, last=i == len(segs) - 1)
                result.problems += [f"{cls}/{p}" for p in problems]
                for hit in hits:
                    hit.verified = not problems
                result.hits += hits
    return result


def _records(seg: Path, cipher: Cipher | None, needles: list[bytes]) -> Iterator[tuple[dict[str, Any], Any]]:
    for line in seg.read_bytes().split(b"\n"):
        if not line.endswith(b"}"):
            continue  # the empty end, or a torn tail (verification says so)
        if needles and not all(n in line for n in needles):
            continue  # cannot match: not parsed
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        data = rec.get("data")
        if cipher is not None and rec.get("kind") not in ("seal", "purge"):
            try:
                data = cipher.open(data, rec["seq"])
            except Exception:
                continue
        yield rec, data


def _verify(seg: Path, before: Path | None, key: bytes, last: bool) -> list[str]:
    """A segment's problems, its chain anchored at the last record of the segment before it
    (a purged or missing one leaves the first link unchecked)."""
    seq, prev_hash, prev_mac = 1, GENESIS, GENESIS
    first = _first(seg)
    if before is not None and segment_number(before) == segment_number(seg) - 1:
        tail = _last(before)
        if tail is not None:
            seq, prev_hash, prev_mac = tail["seq"] + 1, tail["hash"], tail["mac"]
    elif first is not None and (before is not None or first["seq"] != 1):
        seq, prev_hash, prev_mac = first["seq"], "?", "?"
    rep = ClassReport(seg.parent.name)
    _verify_segment(seg, key, rep, seq, prev_hash, prev_mac, last=last)
    return rep.problems


def _first(seg: Path) -> dict[str, Any] | None:
    with open(seg, "rb") as f:
        line = f.readline()
    try:
        return orjson.loads(line)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:
        return None


def _last(seg: Path) -> dict[str, Any] | None:
    with open(seg, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 8192))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        return orjson.loads(tail)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:
        return None

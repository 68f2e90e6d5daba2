"""Event-time lateness per source, in live runs.

Each source has an *allowed lateness* (its bound): an event older than the source's newest event
minus the bound is late (a ``late_event`` violation). The bound comes from, in order: the input's
own ``--lateness``, the ``LOGWARDEN_SOURCE_LATENESS`` map (keys: a format name or a glob on the
source), ``LOGWARDEN_ALLOWED_LATENESS`` when set, else the format's default (``FORMAT_LATENESS``:
CloudTrail delivers in minutes, Kubernetes audit in seconds, tailed files and syslog at once).

Within its bound each source also *learns* the disorder it actually shows (``SourceClock``): the
largest lag behind its newest event over the last minutes of event time, with a margin. Its
*watermark* is its newest event minus that learned delay, so a CloudTrail trail that arrives in
order lets order-sensitive rules fire seconds after an event, not minutes, while a record four
minutes late is still accepted (the bound) and still counts (see ``rules.engine``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from logwarden.event import Event
from logwarden.parsers import PARSERS
from logwarden.violation import Violation, excerpt

FORMAT_LATENESS: dict[str, timedelta] = {
    "cloudtrail": timedelta(minutes=10),  # S3 delivery: ~5 minutes typical, not guaranteed
    "k8s_audit": timedelta(seconds=30),  # webhook and log backends batch for seconds
    "json": timedelta(seconds=5),  # gateways: several instances writing to one stream
}
DEFAULT_LATENESS = timedelta(seconds=1)  # tailed files, syslog, combined, logfmt
FLOOR = timedelta(seconds=1)  # the learned delay never goes below this
MARGIN = 2.0  # learned delay = the largest lag observed, times this
HISTORY_MINUTES = 10  # the lags remembered: this many minutes of the source's event time


class SourceMark(NamedTuple):
    """What a rule key learns of a source with each of its events (plain, so it pickles)."""

    source: str
    newest: datetime  # the source's newest event time when the event was read
    bound: timedelta  # its allowed lateness
    learned: timedelta  # the delay of its watermark behind ``newest``


@dataclass(frozen=True)
class LatenessPolicy:
    """The bound of each source: see the module's docstring for the order. (An input's own
    ``--lateness`` comes with its chunks, as ``RawChunk.lateness``.)"""

    overall: timedelta | None = None  # LOGWARDEN_ALLOWED_LATENESS, when set
    by_pattern: Mapping[str, timedelta] = field(default_factory=dict)  # format name or glob -> bound

    def bound(self, source: str, fmt: str, override: timedelta | None = None) -> timedelta:
        if override is not None:
            return override
        for pattern, value in self.by_pattern.items():
            if pattern in (source, fmt) or fnmatch.fnmatchcase(source, pattern):
                return value
        if self.overall is not None:
            return self.overall
        return FORMAT_LATENESS.get(fmt, DEFAULT_LATENESS)

    def ceiling(self, formats: list[str], own: list[timedelta]) -> timedelta:
        """The largest bound a source of these formats (an empty name: unknown, as a stream's)
        or with these inputs' own lateness can get: for steps keyed across sources."""
        if not formats or "" in formats:
            found = [*self.by_pattern.values(),
                     self.overall if self.overall is not None else max(FORMAT_LATENESS.values())]
        else:  # a glob could still name one of these files: it counts
            found = [self.bound("", fmt) for fmt in formats] + [v for k, v in self.by_pattern.items()
                                                                 if k not in PARSERS]
        return max([*found, *own, DEFAULT_LATENESS])


@dataclass
class SourceClock:
    """One source's newest event time, allowed lateness and learned disorder (plain values)."""

    bound: timedelta
    newest: datetime | None = None
    lags: dict[int, float] = field(default_factory=dict)  # event-time minute -> largest lag (s)

    def late(self, ts: datetime) -> timedelta | None:
        """Take an event's time; how far behind the source's allowed lateness it is, if it is."""
        newest = self.newest
        if newest is None or ts >= newest:
            self.newest = ts
            return None
        lag = newest - ts
        if lag > self.bound:
            return lag - self.bound
        minute = int(newest.timestamp()) // 60
        seconds = lag.total_seconds()
        if seconds > self.lags.get(minute, 0.0):
            if minute not in self.lags:
                self.lags = {m: v for m, v in self.lags.items() if m > minute - HISTORY_MINUTES}
            self.lags[minute] = seconds
        return None

    @property
    def learned(self) -> timedelta:
        """The watermark's delay: the disorder seen lately, with a margin, within the bound."""
        if not self.lags or self.newest is None:
            return min(FLOOR, self.bound)
        minute = int(self.newest.timestamp()) // 60
        recent = [v for m, v in self.lags.items() if m > minute - HISTORY_MINUTES]
        seen = timedelta(seconds=max(recent, default=0.0) * MARGIN)
        return min(self.bound, max(FLOOR, seen))

    def mark(self, source: str) -> SourceMark | None:
        if self.newest is None:
            return None
        return SourceMark(source, self.newest, self.bound, self.learned)

    def watermark(self) -> datetime | None:
        return self.newest - self.learned if self.newest is not None else None


def late_event(e: Event, behind: timedelta, whose: str) -> Violation:
    """The record of an event later than allowed: kept, with how late it was, never dropped silently."""
    return Violation(e.source, e.line, "late_event",
                     f"event arrived {behind.total_seconds():.0f}s behind the watermark of {whose} "
                     "(beyond the allowed lateness)",
                     "dropped", excerpt(f"{e.action} {e.user_name or ''} {e.source_ip or ''}"),
                     e.dataset, e.timestamp, e.id)

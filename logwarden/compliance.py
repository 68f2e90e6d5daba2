"""The standard raises its own alerts: a source that breaks the logging standard is an incident.

Blocking and recording every non-compliant line (``logwarden.standard``) tells nobody. These
detectors watch each source's results and raise alerts through the same incidents, Slack,
budgets and audit trail as the rules, one incident per source and problem, updated while it
lasts:

- ``standard.secret-in-logs``: the first redacted secret of a kind in a source (kinds the profile
  expects for it stay quiet); later ones update it with their count and last line.
- ``standard.compliance-drop``: the source's compliance over a sliding window
  (``compliance_window``, at least ``min_lines`` lines) fell below its ``min_compliance``;
  resolved when it recovers.
- ``standard.field-missing``: a required field the source always carried is missing from a
  share of its lines (a deploy stopped logging ``user``).
- ``standard.format-changed``: its lines stopped parsing in the format it was detected with.
- ``standard.clock-skew``: its timestamps jump beyond the profile's limits.
- ``standard.unknown-source``: a new input that matches no profile entry, or whose format
  cannot be detected, reported once.

Time is the source's own: the newest valid event time it has shown (lines without a usable time
count at that time), so replays give the same alerts as the live run did. State is plain and
small (minute buckets over one window), so it snapshots with the source's checker.
"""

from __future__ import annotations

import fnmatch
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from logwarden.alerts import Alert, make_alert_id
from logwarden.timeutil import parse_duration, running_newest, utcnow
from logwarden.violation import Violation

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
BUCKET = timedelta(minutes=1)
_REASONS = attrgetter("reasons")

SECRET, DROP, FIELD, FORMAT, CLOCK, UNKNOWN = (
    "standard.secret-in-logs", "standard.compliance-drop", "standard.field-missing", "standard.format-changed",
    "standard.clock-skew", "standard.unknown-source")
DESCRIPTIONS = {
    SECRET: "Secrets written into a log source",
    DROP: "A log source's compliance with the logging standard dropped",
    FIELD: "A log source stopped carrying a required field",
    FORMAT: "A log source's lines stopped parsing in its format",
    CLOCK: "A log source's timestamps jump beyond the standard's limits",
    UNKNOWN: "A new log source the standard does not know",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceAlerting(_Strict):
    """Per source-path glob (``*/payments/*``): what differs for those sources."""

    enabled: bool | None = None
    min_compliance: float | None = Field(None, ge=0, le=1)
    min_lines: int | None = Field(None, ge=1)
    secrets_expected: list[str] = []

    @field_validator("secrets_expected")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        from logwarden.secrets import kind_named
        return [kind_named(v) for v in value]


class StandardAlerts(_Strict):
    """The ``alerts:`` section of a standard profile."""

    enabled: bool = True
    secrets: bool = True
    compliance_window: Duration = timedelta(minutes=15)
    min_lines: int = Field(50, ge=1)
    min_compliance: float = Field(0.95, ge=0, le=1)
    # A required field, the format or the clock "drifts" when this share of a window's lines
    # (at least min_lines) fail on it, once the source has shown learn_lines lines.
    drift_share: float = Field(0.1, gt=0, le=1)
    format_share: float = Field(0.5, gt=0, le=1)
    learn_lines: int = Field(200, ge=1)
    unknown_sources: bool = True
    severity: dict[str, str] = {SECRET: "high", DROP: "high", FIELD: "medium", FORMAT: "high", CLOCK: "medium",
                                UNKNOWN: "low"}
    tags: dict[str, list[str]] = {
        SECRET: ["pci-dss-4.0:3.3.1", "pci-dss-4.0:3.5.1", "pci-dss-4.0:10.3.1", "nist-800-53:SI-11"],
        DROP: ["pci-dss-4.0:10.2.2", "pci-dss-4.0:10.3", "nist-800-53:AU-3", "nist-800-53:AU-6"],
        FIELD: ["pci-dss-4.0:10.2.2", "nist-800-53:AU-3"],
        FORMAT: ["pci-dss-4.0:10.3", "nist-800-53:AU-3", "nist-800-53:AU-6"],
        CLOCK: ["pci-dss-4.0:10.6.1", "nist-800-53:AU-8"],
        UNKNOWN: ["pci-dss-4.0:10.2.1", "nist-800-53:AU-6"],
    }
    sources: dict[str, SourceAlerting] = {}

    def for_source(self, source: str) -> SourceAlerting:
        """The first matching glob's overrides (sources are matched by their path or name)."""
        return next((v for k, v in self.sources.items() if fnmatch.fnmatchcase(source, k)), SourceAlerting())


@dataclass
class Bucket:
    start: datetime
    lines: int = 0
    compliant: int = 0
    # violation reason, or "missing:<field>" -> lines. A dict: creating a Counter took 1.0 µs of the
    # 1.5 µs a bucket cost, once a minute per source, and most minutes count no reason.
    reasons: dict[str, int] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)  # reason -> its first line in this bucket


@dataclass
class Open:
    """An alert in progress: the same id, a new revision as it grows."""

    alert_id: str
    start: datetime
    first_line: int
    last_line: int
    count: int
    end: datetime | None = None  # the newest offending line's time
    revision: int = 0
    reported: int = -1  # the count last reported (one update a batch, not a line)
    detail: str = ""
    clear_since: datetime | None = None  # since when its condition no longer holds


@dataclass
class MonitorState:
    buckets: deque[Bucket] = field(default_factory=deque)
    lines: int = 0
    always: dict[str, int] = field(default_factory=dict)  # required field -> lines carrying it while learning
    open: dict[str, Open] = field(default_factory=dict)  # problem key -> its alert in progress
    reported_unknown: bool = False
    now: datetime | None = None  # the source's own time: its newest valid event time
    changed: set[str] = field(default_factory=set)  # secrets grown since their last report


class SourceMonitor:
    """Per source: feeds on every line's outcome, raises the standard's alerts at batch ends."""

    def __init__(self, config: StandardAlerts, source: str, fmt: str, required: list[str],
                 known_source: bool, expected: frozenset[str] = frozenset(), state: MonitorState | None = None) -> None:
        self.config, self.source, self.fmt = config, source, fmt
        local = config.for_source(source)
        self.enabled = config.enabled if local.enabled is None else local.enabled
        self.min_compliance = config.min_compliance if local.min_compliance is None else local.min_compliance
        self.min_lines = config.min_lines if local.min_lines is None else local.min_lines
        self.expected = expected | frozenset(local.secrets_expected)
        self.required = required
        self.known_source = known_source or bool(config.sources and local != SourceAlerting())
        self.state = state or MonitorState()
        self._pending: list[Alert] = []

    # -- feeding -----------------------------------------------------------------------------
    def observe(self, lineno: int, when: datetime | None, violation: Violation | None,
                missing: tuple[str, ...]) -> None:
        if not self.enabled:
            return
        st = self.state
        st.lines += 1
        if when is not None and when.tzinfo is None:
            when = None  # a zone-less time was already reported; it cannot be placed
        when = when or self.state.now
        if when is not None and (self.state.now is None or when > self.state.now):
            self.state.now = when
        if st.lines <= self.config.learn_lines:
            for name in self.required:
                if name not in missing:
                    st.always[name] = st.always.get(name, 0) + 1
        if self.state.now is None:
            return  # nothing to place it in time yet
        last = st.buckets[-1] if st.buckets else None
        # the common case, a line of the current minute, without any date arithmetic
        bucket = last if last is not None and last.start <= self.state.now < last.start + BUCKET else \
            self._bucket(self.state.now)
        bucket.lines += 1
        if violation is None:
            bucket.compliant += 1
            return
        reasons = [violation.reason] + [f"missing:{m}" for m in missing]
        for r in reasons:
            bucket.reasons[r] = bucket.reasons.get(r, 0) + 1
            bucket.first.setdefault(r, lineno)
        kinds = [k for k in violation.secret_kinds if k not in self.expected]
        if self.config.secrets and kinds:
            for kind in kinds:
                self._secret(kind, lineno, violation)

    def observe_compliant(self, times: list[datetime]) -> None:
        """``observe`` of consecutive compliant lines (no violation, nothing missing), from their
        event times (tz-aware), at once."""
        if not self.enabled or not times:
            return
        st = self.state
        learning = min(len(times), self.config.learn_lines - st.lines)
        if learning > 0:
            for name in self.required:
                st.always[name] = st.always.get(name, 0) + learning
        st.lines += len(times)
        # Each is counted in the minute of the source's time after it (``observe``): that time
        # only rises, so a minute's lines are one slice of it, found by bisection.
        peaks = running_newest(times, st.now)
        bucket = st.buckets[-1] if st.buckets else None
        at, n = 0, len(peaks)
        if self._settled():
            # Every minute's end in this run would find a clean window and nothing to resolve
            # (``_evaluate``'s first answer), so a minute the window has left by the run's last
            # line needs no bucket: its lines are counted in ``lines`` only. (A sparse source's
            # batch spans hours: a bucket for each of its minutes cost 5% of a replay.)
            at = bisect_left(peaks, peaks[-1] - self.config.compliance_window - BUCKET)
        while at < n:
            now = peaks[at]
            if bucket is None or not bucket.start <= now < bucket.start + BUCKET:
                st.now = now  # as ``observe`` has it when a minute ends (``_evaluate``)
                bucket = self._bucket(now)
            stop = bisect_left(peaks, bucket.start + BUCKET, at)
            bucket.lines += stop - at
            bucket.compliant += stop - at
            at = stop
        st.now = peaks[-1]

    def _bucket(self, when: datetime) -> Bucket:
        st = self.state
        # the minute it falls in (a UTC time's own minute: 3x cheaper than through its timestamp)
        start = when.replace(second=0, microsecond=0) if when.tzinfo is UTC else \
            datetime.fromtimestamp((when.timestamp() // 60) * 60, UTC)
        if not st.buckets or st.buckets[-1].start < start:
            if st.buckets:
                self._pending += self._evaluate()  # a minute has passed in the source's time
            st.buckets.append(Bucket(start))
        elif st.buckets[-1].start > start:  # an older line: counted in the newest bucket
            return st.buckets[-1]
        horizon = start - self.config.compliance_window
        while st.buckets and st.buckets[0].start <= horizon:
            st.buckets.popleft()
        return st.buckets[-1]

    def _secret(self, kind: str, lineno: int, violation: Violation) -> None:
        key = f"{SECRET}|{kind}"
        cur = self.state.open.get(key)
        if cur is None:
            assert self.state.now is not None
            cur = self.state.open[key] = Open(make_alert_id(SECRET, self.source, f"{kind}:{lineno}"), self.state.now,
                                              lineno, lineno, 0, detail=violation.excerpt)
        cur.count += 1
        cur.last_line, cur.end = lineno, self.state.now
        if cur.count == 1:  # the first one of its kind: at once
            self._pending.append(self._report(SECRET, cur, self._secret_summary(kind, cur)))
        else:
            self.state.changed.add(key)

    # -- alerts --------------------------------------------------------------------------------
    def unknown(self, why: str) -> list[Alert]:
        """A new source the profile does not know, or whose format could not be detected: once."""
        st = self.state
        if not self.enabled or not self.config.unknown_sources or st.reported_unknown:
            return []
        st.reported_unknown = True
        when = self.state.now or utcnow()  # an undetected format dates nothing
        aid = make_alert_id(UNKNOWN, self.source, "new")
        return [self._alert(UNKNOWN, aid, when, when, 1, f"new log source {self.source}: {why}", 0)]

    def flush(self, final: bool = False) -> list[Alert]:
        """What the lines seen so far raised. Secrets open at their first line; everything else is
        judged as each minute of the source's time ends (``final``: at the end of a finite input,
        the last one too), so the alerts do not depend on how lines were batched."""
        if final and self.enabled and self.state.now is not None:
            self._pending += self._evaluate()
        found, self._pending = self._pending, []
        return found

    def _clean(self) -> bool:
        """No reason in the window's buckets and no alert open but secrets' (which the window
        does not close)."""
        st = self.state
        return not any(map(_REASONS, st.buckets)) and all(k.startswith(f"{SECRET}|") for k in st.open)

    def _settled(self) -> bool:
        """``_evaluate`` would tell nothing at any minute's end while only compliant lines come."""
        return not self.state.changed and self._clean()

    def _evaluate(self) -> list[Alert]:
        """Every condition over the window as it stands."""
        out: list[Alert] = []
        if self.state.changed:
            for key in sorted(self.state.changed):
                cur = self.state.open[key]
                kind = key.split("|", 1)[1]
                out.append(self._report(SECRET, cur, self._secret_summary(kind, cur)))
            self.state.changed.clear()
        if self._clean():
            # A clean window with nothing open to resolve: no condition can hold (every share is
            # 0 and every threshold above it), the common case once a minute per source.
            return out
        window = list(self.state.buckets)
        lines = sum(b.lines for b in window)
        if lines < self.min_lines:
            return out
        reasons: Counter[str] = Counter()
        for b in window:
            reasons.update(b.reasons)
        compliant = sum(b.compliant for b in window)
        rate = compliant / lines
        main = ", ".join(f"{r}={n}" for r, n in reasons.most_common(3) if not r.startswith("missing:"))
        minutes = self.config.compliance_window.total_seconds() / 60
        out += self._condition(DROP, DROP, rate < self.min_compliance, window, reasons,
                               lambda first: f"compliance {rate:.1%} over the last {minutes:.0f} min "
                                             f"({lines} lines, threshold {self.min_compliance:.0%}); main reasons: "
                                             f"{main or '-'}; since line {first}")
        if self.state.lines > self.config.learn_lines:
            learned = self.config.learn_lines
            for name in self.required:
                if self.state.always.get(name, 0) < learned:
                    continue  # not always carried while learning: not this detector's business
                share = reasons[f"missing:{name}"] / lines
                out += self._condition(f"{FIELD}|{name}", FIELD, share >= self.config.drift_share, window, reasons,
                                       lambda first, name=name, share=share: (
                                           f"{name} missing from {share:.0%} of the last {lines} lines of "
                                           f"{self.source}, which always carried it; began at line {first}"),
                                       reason=f"missing:{name}")
            share = reasons["malformed"] / lines
            out += self._condition(FORMAT, FORMAT, share >= self.config.format_share, window, reasons,
                                   lambda first: f"{share:.0%} of the last {lines} lines of {self.source} no longer "
                                                 f"parse as {self.fmt}; began at line {first}", reason="malformed")
            share = reasons["bad_timestamp"] / lines
            out += self._condition(CLOCK, CLOCK, share >= self.config.drift_share, window, reasons,
                                   lambda first: f"{share:.0%} of the last {lines} lines of {self.source} have "
                                                 f"timestamps beyond the standard's limits; began at line {first}",
                                   reason="bad_timestamp")
        return out

    def _condition(self, key: str, rule: str, holds: bool, window: list[Bucket], reasons: Counter[str],
                   summary: Any, reason: str | None = None) -> list[Alert]:
        """Open, update or resolve the alert of one condition over the window."""
        cur = self.state.open.get(key)
        assert self.state.now is not None
        if holds:
            counted = [reason] if reason else [r for r in reasons if not r.startswith("missing:")]
            bad = sum(reasons[r] for r in counted)
            if cur is not None:
                cur.clear_since = None
            firsts = [b.first[r] for b in window for r in ([reason] if reason else list(b.first)) if r in b.first]
            first = min(firsts) if firsts else 0
            if cur is None:
                cur = self.state.open[key] = Open(make_alert_id(rule, self.source, f"{key}:{first}"), self.state.now,
                                                  first, first, 0)
            cur.count = max(cur.count, bad)
            if cur.count == cur.reported:
                return []
            return [self._report(rule, cur, summary(cur.first_line))]
        if cur is None:
            return []
        # Resolved once it has stayed recovered for a third of the window: no flapping at the edge.
        cur.clear_since = cur.clear_since or self.state.now
        if self.state.now - cur.clear_since < self.config.compliance_window / 3:
            return []
        del self.state.open[key]
        return [self._alert(rule, cur.alert_id, cur.start, self.state.now, cur.count,
                            f"recovered: {summary(cur.first_line)}", cur.revision, cur.first_line, resolved=True)]

    def _secret_summary(self, kind: str, cur: Open) -> str:
        return (f"{kind} redacted in {cur.count} line(s) of {self.source}, lines {cur.first_line}..{cur.last_line}; "
                f"first: {cur.detail}")

    def _report(self, rule: str, cur: Open, summary: str) -> Alert:
        assert self.state.now is not None
        alert = self._alert(rule, cur.alert_id, cur.start, cur.end or self.state.now, cur.count, summary,
                            cur.revision, cur.first_line)
        cur.reported, cur.revision = cur.count, cur.revision + 1
        return alert

    def _alert(self, rule: str, aid: str, start: datetime, end: datetime, count: int, summary: str,
               revision: int, first_line: int = 0, resolved: bool = False) -> Alert:
        evidence = [f"{self.source}:{first_line}"] if first_line else []  # where it began
        return Alert(aid, rule, self.config.severity.get(rule, "medium"), self.source, start, end, count,
                     summary, evidence, list(self.config.tags.get(rule, [])), revision, DESCRIPTIONS[rule],
                     resolved=resolved)

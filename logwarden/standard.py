"""The logging standard: a YAML profile, and the per-source checker that enforces it.

Every input line ends as exactly one of: a compliant event; an event processed after
redaction (with a ``secret`` violation); or a violation with the line dropped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from logwarden import secrets
from logwarden.alerts import Alert
from logwarden.compliance import SourceMonitor, StandardAlerts
from logwarden.errors import ConfigError, ParseError, TimestampError
from logwarden.event import ECS_FIELDS, ITEM, Event
from logwarden.parsers import PARSERS, Parser
from logwarden.parsers.base import MAX_LINE
from logwarden.rows import EVENT_ORDER, EventRows, ParsedColumns
from logwarden.scopes import Scope, ScopeLabeler
from logwarden.timeutil import parse_duration, running_newest, utcnow
from logwarden.violation import Violation, excerpt

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimestampPolicy(_Strict):
    require_timezone: bool = True
    max_future_skew: Duration = timedelta(minutes=5)
    max_age: Duration | None = timedelta(days=7)
    age_reference: Literal["source", "wallclock"] = "source"


class TimestampOverride(_Strict):
    require_timezone: bool | None = None
    max_future_skew: Duration | None = None
    max_age: Duration | None = None
    age_reference: Literal["source", "wallclock"] | None = None


def _check_fields(value: list[str]) -> list[str]:
    for entry in value:
        for name in entry.split("|"):
            if name not in ECS_FIELDS:
                raise ValueError(f"unknown field {name!r}; known: {sorted(ECS_FIELDS)}")
    return value


# Who an audit record must name (PCI DSS 4.0 10.2.2 "user identification", NIST AU-3 "identity"):
# a gateway in front of an API or a database must say which user; an anonymous web request can
# only say which address; a host's syslog line may name neither.
Identity = Literal["user", "address", "user_or_address", "none"]
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "user": ("user.name",), "address": ("source.ip",), "user_or_address": ("user.name", "source.ip"), "none": ()}


class SourcePolicy(_Strict):
    required: list[str] | None = None
    identity: Identity | None = None
    timestamp: TimestampOverride = TimestampOverride()
    secrets_expected: list[str] = []

    _fields = field_validator("required")(lambda v: v if v is None else _check_fields(v))

    @field_validator("secrets_expected")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        value = [secrets.kind_named(v) for v in value]
        unknown = set(value) - secrets.known_kinds()
        if unknown:
            raise ValueError(f"unknown secret kind(s) {sorted(unknown)}; the kinds are the ids of the secret "
                             "rules (docs/secrets.md), e.g. aws-access-token, credential-param")
        return value


class Profile(_Strict):
    name: str
    description: str = ""
    controls: list[str] = []
    timestamp: TimestampPolicy = TimestampPolicy()
    required: list[str] = ["@timestamp", "event.action"]
    identity: Identity = "none"
    sources: dict[str, SourcePolicy] = {}
    alerts: StandardAlerts = StandardAlerts()  # the standard's own detectors (logwarden.compliance)
    scopes: dict[str, Scope] = {}  # compliance scopes: events in one carry labels.scope (logwarden.scopes)

    _fields = field_validator("required")(_check_fields)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: dict[str, SourcePolicy]) -> dict[str, SourcePolicy]:
        unknown = set(value) - set(PARSERS)
        if unknown:
            raise ValueError(f"unknown source type(s) {sorted(unknown)}; known: {list(PARSERS)}")
        return value

    def policy_for(self, dataset: str) -> tuple[tuple[tuple[str, ...], ...], TimestampPolicy, frozenset[str]]:
        """Required field groups, timestamp policy and expected secret kinds for a source type."""
        src = self.sources.get(dataset, SourcePolicy())
        required = tuple(tuple(e.split("|")) for e in (src.required or self.required))
        who = IDENTITY_FIELDS[src.identity or self.identity]
        if who and who not in required:
            required += (who,)
        overrides = {k: v for k, v in src.timestamp.model_dump().items() if v is not None}
        ts = self.timestamp.model_copy(update=overrides)
        return required, ts, frozenset(src.secrets_expected)


def load_profile(path: Path | None = None) -> Profile:
    """The profile at ``path``, or the shipped default."""
    if path is None:
        text = resources.files("logwarden").joinpath("data/standard-default.yaml").read_text()
        where = "<default standard>"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"standard profile {path}: {exc.strerror}") from None
        where = str(path)
    try:
        return Profile.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        raise ConfigError(f"standard profile {where}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"standard profile {where}: {problems}") from None


@dataclass
class Scorecard:
    """Per-source compliance figures; plain values so it snapshots and merges."""

    source: str
    dataset: str | None = None
    lines: int = 0
    events: int = 0
    compliant: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    redacted: int = 0
    blank: int = 0  # empty or whitespace-only lines: counted, but no record (no event, no violation)
    items: int = 0  # records beyond the first of lines that hold several (a Kubernetes EventList)
    newest: datetime | None = None  # the newest event time seen (for lag)
    oldest: datetime | None = None  # the oldest event time seen (the period it covers)
    # Live runs: the source's allowed lateness and its watermark's learned delay, in seconds.
    allowed_lateness: float | None = None
    watermark_delay: float | None = None
    # Compliance scopes: per scope, [records of the scope, compliant ones] (logwarden.scopes)
    scopes: dict[str, list[int]] = field(default_factory=dict)
    # Compliance over time: per UTC day of the source's own time (its newest valid event time at
    # each record), [records, compliant]; and the same per scope
    days: dict[str, list[int]] = field(default_factory=dict)
    scope_days: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def compliance_rate(self) -> float:
        records = self.lines - self.blank + self.items
        return self.compliant / records if records else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dataset": self.dataset,
            "lines": self.lines,
            "events": self.events,
            "compliant": self.compliant,
            "dropped": self.dropped,
            "redacted": self.redacted,
            "blank": self.blank,
        } | ({"items": self.items} if self.items else {}) | {
            "violations": dict(sorted(self.violations.items())),
            "compliance_rate": round(self.compliance_rate, 6),
            "newest": self.newest.isoformat() if isinstance(self.newest, datetime) else self.newest,
            "oldest": self.oldest.isoformat() if isinstance(self.oldest, datetime) else self.oldest,
        } | ({"allowed_lateness": self.allowed_lateness, "watermark_delay": self.watermark_delay}
             if self.allowed_lateness is not None else {}) | ({"scopes": {
                 name: {"records": n, "compliant": ok, "compliance_rate": round(ok / n, 6) if n else 1.0}
                 for name, (n, ok) in sorted(self.scopes.items())}} if self.scopes else {}) | (
            {"days": dict(sorted(self.days.items()))} if self.days else {}) | (
            {"scope_days": {name: dict(sorted(d.items())) for name, d in sorted(self.scope_days.items())}}
            if self.scope_days else {})


Outcome = tuple[Event | None, Violation | None]  # (None, None) only for a blank line
Judged = tuple[Event | None, Violation | None, tuple[str, ...]]  # an outcome, and the required fields it lacked


UNREADABLE = "a record this parser could not read"  # a parser raised something else than ParseError


_RESOURCE, _EXTRA = EVENT_ORDER.index("resource"), EVENT_ORDER.index("extra")  # ParsedColumns' columns


class SourceChecker:
    """Parses and checks the lines of one source, in order.

    State (newest timestamp seen, whether a raw private key block is open, the scorecard) is
    per source and plain, so it snapshots for recovery.
    """

    def __init__(self, profile: Profile, parser: Parser, source: str,
                 now: Callable[[], datetime] = utcnow, secret_rules: tuple[str, ...] = (),
                 max_line: int = MAX_LINE) -> None:
        self.source = source
        self._max_line = max_line
        self._redactor = secrets.redactor_for(secret_rules)
        self._parser = parser
        self._now = now
        self._required, self._ts, self._expected = profile.policy_for(parser.name)
        src = profile.sources.get(parser.name)
        self._identity = (src.identity if src and src.identity else None) or profile.identity
        self._identity_label = " or ".join(IDENTITY_FIELDS[self._identity])
        self._required_getters = [(" or ".join(group), [Event.getter(n) for n in group])
                                  for group in self._required]
        self.newest: datetime | None = None
        self.lane = True  # plain lines take the lane (``check_lines``); False: every line the full path
        self.in_key_block = False
        self.scorecard = Scorecard(source, parser.name)
        self._day: tuple[datetime, datetime, str] | None = None  # the current day: start, end, name
        labeler = ScopeLabeler(profile.scopes, source)
        self._labeler = labeler if labeler.active else None
        self._scope = labeler.label if labeler.active else None
        self._source_scopes = labeler.whole
        # every field of every group set: the common case, tested at once
        self._required_names = [n for group in self._required for n in group]
        self._all_required = Event.all_set(self._required_names)
        self._many = getattr(parser, "parse_many", None)  # lines that may hold several records
        self._columns = getattr(parser, "parse_columns", None)  # batches read as columns
        self.monitor = SourceMonitor(profile.alerts, source, parser.name,
                                     [label for label, _ in self._required_getters],
                                     known_source=parser.name in profile.sources, expected=self._expected)

    def check_lines(self, lines: list[str], first_lineno: int) -> Iterator[Event | Violation | Alert]:
        """Events and violations of consecutive lines, in line order; then the standard's own
        alerts about this source (``logwarden.compliance``).

        Most lines are plain: no secret, one record that parses, in time, with every required
        field. Those take a lane that parses and judges them and leaves their counting
        (scorecard, days, the monitor's minutes) to one pass per run of them; every other line
        takes the full path (``_record``), in order, so both end in the same state."""
        return self._checked(lines, first_lineno, None)  # type: ignore[return-value]

    def check_batch(self, lines: list[str], first_lineno: int) -> tuple[EventRows, list[Violation | Alert]]:
        """``check_lines`` of a batch: its events (``EventRows``, in line order) and the rest.
        When the parser reads batches as columns (``parse_columns``), the lane judges plain
        lines from the columns, and an event is built only when something reads it."""
        reader = self._columns if self.lane else None
        columns = reader(lines, self.source, first_lineno) if reader is not None else None
        labels = self._labeler.label_rows(columns.values[_RESOURCE], columns.values[_EXTRA]) \
            if columns is not None and self._labeler is not None else None  # each row's scopes, set in its extra
        order: list[int | Event] = []
        others: list[Violation | Alert] = []
        for item in self._checked(lines, first_lineno, columns, labels):
            if type(item) is range:
                order.extend(item)
            elif type(item) is int or type(item) is Event:
                order.append(item)  # type: ignore[arg-type]
            else:
                others.append(item)  # type: ignore[arg-type]
        return EventRows(columns, order), others

    def _checked(self, lines: list[str], first_lineno: int, columns: ParsedColumns | None,
                 labels: list[tuple[str, ...]] | None = None) -> Iterator[int | Event | Violation | Alert]:
        """``check_lines``, where a compliant lane line read from ``columns`` is its row (an
        int), and a run of them one ``range``; ``labels``: with compliance scopes, each row's."""
        now = self._now()
        monitor = self.monitor
        found = self._redactor.redact_batch(lines)  # one keyword pass over the whole batch
        lane = self.lane
        run: list[datetime] = []  # the times of consecutive plain compliant events, not counted yet
        # with compliance scopes, the scopes of each of them (counted with them)
        scoped: list[tuple[str, ...]] | None = [] if self._scope is not None else None
        before = self.newest  # the source's newest time before the run's first event
        plain, parse_plain, lane_row = self._plain, self._parse_plain, self._lane_row
        read = columns.ok if columns is not None else [False] * len(lines)
        times = columns.values[0] if columns is not None else None
        complete = columns.all_set(self._required_names) if columns is not None else read
        # Per line read as columns: where the run of such lines ready for the lane from it ends.
        ready_to = self._ready_runs(lines, found, read, complete) if columns is not None and lane else None
        row, n = 0, len(lines)
        while row < n:
            if ready_to is not None and ready_to[row] > row and not self.in_key_block:
                newest = self.newest
                end = self._accept_rows(times, row, ready_to[row], now)  # type: ignore[arg-type]
                if end > row:  # compliant rows: counted with the run, yielded as one range
                    if not run:
                        before = newest
                    run.extend(times[row:end])  # type: ignore[index]
                    if scoped is not None:
                        scoped.extend(labels[row:end])  # type: ignore[index]
                    yield range(row, end)  # type: ignore[misc]
                    row = end
                    continue
            here, raw, redaction, lineno = row, lines[row], found[row], first_lineno + row
            row += 1
            if lane and redaction is None and plain(raw):
                newest = self.newest
                outcome = lane_row(columns, complete[here], here, lineno, now, raw) if read[here] else \
                    parse_plain(raw, lineno, now)  # type: ignore[arg-type]
                if type(outcome) is int or type(outcome) is Event:
                    if not run:
                        before = newest
                    run.append(times[outcome] if type(outcome) is int else outcome.timestamp)  # type: ignore[index,union-attr]
                    if scoped is not None:
                        scoped.append(labels[outcome] if type(outcome) is int else  # type: ignore[index]
                                      tuple(outcome.get("labels.scope") or ()))  # type: ignore[union-attr]
                    yield outcome
                    continue
                judged: list[Judged] | None = outcome  # type: ignore[assignment]
            else:
                judged = None
            if run:
                self._count_run(run, before, scoped)
                run = []
                scoped = [] if scoped is not None else None
            if judged is None:
                judged = self._record(raw, lineno, now, redaction)
            else:
                self.scorecard.lines += 1
                self._count(judged)
            for event, violation, missing in judged:
                # the line's time, when the standard accepted it (a jumped clock must not move the source's)
                when = event.timestamp if event is not None else \
                    violation.timestamp if violation is not None and violation.reason != "bad_timestamp" else None
                monitor.observe(lineno, when, violation, missing)
                if violation is not None:
                    yield violation
                if event is not None:
                    yield event
        if run:
            self._count_run(run, before, scoped)
        self.scorecard.newest = self.newest
        if not monitor.known_source and lines:  # after its lines: dated by them where they could be
            why = ("its format could not be detected" if self._parser.name == "undetected" else
                   f"no entry of the standard profile covers its format ({self._parser.name})")
            yield from monitor.unknown(why)
        yield from monitor.flush()

    def _ready_runs(self, lines: list[str], found: list[secrets.Redaction | None], read: list[bool],
                    complete: list[bool]) -> list[int]:
        """Per line, where the run of lines ready for the lane from it ends (itself when it is
        not ready): read as columns, every required field set, no secret, and ``_plain``."""
        limit, n = self._max_line, len(lines)
        if not n:
            return []
        if found.count(None) == n and all(read) and all(complete) and 0 < min(map(len, lines)) and \
                max(map(len, lines)) <= limit and not any(map(str.isspace, lines)) and \
                "PRIVATE KEY" not in "\n".join(lines):  # the usual batch: every line, asked in C
            return [n] * n
        ready = [redaction is None and ok and full and 0 < len(raw) <= limit and "PRIVATE KEY" not in raw
                 and not raw.isspace() for raw, redaction, ok, full in zip(lines, found, read, complete, strict=True)]
        ends, end = [0] * n, n
        for k in range(n - 1, -1, -1):
            if not ready[k]:
                end = k
            ends[k] = end
        return ends

    def _accept_rows(self, times: list[datetime], start: int, stop: int, now: datetime) -> int:
        """``_accepts`` over rows ``start:stop`` (all complete) until the first it does not
        accept, or with a zone-less time: that row (``stop`` when none)."""
        policy, newest = self._ts, self.newest
        ahead = now + policy.max_future_skew  # ts - now <= skew
        age, wall = policy.max_age, policy.age_reference == "wallclock"
        oldest = now - age if age is not None and wall else None  # now - ts <= age
        row = start
        for row in range(start, stop):
            ts = times[row]
            if ts.tzinfo is None or ts > ahead or (oldest is not None and ts < oldest):
                break
            if newest is None or ts > newest:
                newest = ts
            elif age is not None and not wall and newest - ts > age:
                break
        else:
            row = stop
        self.newest = newest
        return row

    def _plain(self, raw: str) -> bool:
        """Not blank, not too long, not in or opening a private key block (``_check``'s first
        questions, whose answers are violations)."""
        return not self.in_key_block and len(raw) <= self._max_line and "PRIVATE KEY" not in raw \
            and bool(raw) and not raw.isspace()

    def _parse_plain(self, raw: str, lineno: int, now: datetime) -> Event | list[Judged]:
        """A plain line's event when it is compliant (counted later by ``_count_run``), else
        its outcome as the full path judges it (not counted yet)."""
        try:
            items = self._many(raw, self.source, lineno) if self._many is not None else None
            if items is not None:
                return self._judge_items(items, lineno, now, ())
            event = self._parser.parse(raw, self.source, lineno)
        except Exception as exc:  # the full path's verdicts on a parser's errors
            return [self._unparsed(exc, lineno, raw, ())]
        if self._scope is not None:
            self._scope(event)
        ts = event.timestamp
        if ts is not None and ts.tzinfo is None and not self._ts.require_timezone:  # as ``_check_time`` reads it
            ts = event.timestamp = ts.replace(tzinfo=UTC)
        if self._accepts(ts, now, self._all_required(event)):
            return event
        return [self._judge(event, lineno, now, raw, ())]

    def _lane_row(self, columns: ParsedColumns, complete: bool, row: int, lineno: int, now: datetime,
                  raw: str) -> int | list[Judged]:
        """``_parse_plain`` of a line its parser read as columns: its row when it is compliant."""
        times = columns.values[0]
        ts = times[row]
        if ts is not None and ts.tzinfo is None and not self._ts.require_timezone:
            ts = times[row] = ts.replace(tzinfo=UTC)
        if self._accepts(ts, now, complete):
            return row
        return [self._judge(columns.event(row), lineno, now, raw, ())]

    def _accepts(self, ts: datetime | None, now: datetime, complete: bool) -> bool:
        """The lane's verdict: every required field set, and a time with a zone that is neither
        too far ahead nor too old; an accepted time moves the source's newest."""
        policy, newest = self._ts, self.newest
        if complete and ts is not None and ts.tzinfo is not None and ts - now <= policy.max_future_skew:
            reference = now if policy.age_reference == "wallclock" else newest
            if policy.max_age is None or reference is None or reference - ts <= policy.max_age:
                if newest is None or ts > newest:
                    self.newest = ts
                return True
        return False

    def _count_run(self, times: list[datetime], newest: datetime | None,
                   scoped: list[tuple[str, ...]] | None = None) -> None:
        """Count consecutive compliant events (their times; ``scoped``: their compliance scopes)
        as ``_record`` counts them one by one; ``newest``: the source's newest time before the
        first of them."""
        card = self.scorecard
        n = len(times)
        card.lines += n
        card.events += n
        card.compliant += n
        oldest = min(times)
        if card.oldest is None or oldest < card.oldest:
            card.oldest = oldest
        # Each is counted in the day of the source's newest time after it: that time only rises,
        # so a day's lines are one slice of it, found by bisection.
        peaks = running_newest(times, newest)
        at = 0
        while at < n:
            self._day_of(peaks[at])
            assert self._day is not None
            _, end, name = self._day
            stop = bisect_left(peaks, end, at)
            daily = card.days.setdefault(name, [0, 0])
            daily[0] += stop - at
            daily[1] += stop - at
            at = stop
        for k in [k for k, names in enumerate(scoped) if names] if scoped else ():
            self._count_scopes(scoped[k], self._day_of(peaks[k]), True)  # type: ignore[index]
        self.monitor.observe_compliant(times)

    def floor(self, now: datetime) -> datetime | None:
        """No event this source passes on from now on is older than this (its timestamp policy's
        ``max_age`` from its newest event, or from ``now`` on the wall clock); None: no bound
        (no ``max_age``, or no event accepted yet). It only rises (``logwarden.replay``)."""
        age = self._ts.max_age
        if age is None:
            return None
        if self._ts.age_reference == "wallclock":
            return now - age
        return self.newest - age if self.newest is not None else None

    def finish(self) -> list[Alert]:
        """At the end of a finite input: the standard's alerts about its last minute."""
        return self.monitor.flush(final=True)

    def check_line(self, raw: str, lineno: int, now: datetime | None = None,
                   found: secrets.Redaction | bool | None = True) -> Outcome:
        """One line holding one record (``check_record``: any line); ``found``: its redaction
        when the caller already scanned it (None: clean)."""
        outcomes = self.check_record(raw, lineno, now, found)
        if len(outcomes) > 1:
            raise ValueError(f"line {lineno} holds {len(outcomes)} records: use check_record")
        return outcomes[0] if outcomes else (None, None)

    def check_record(self, raw: str, lineno: int, now: datetime | None = None,
                     found: secrets.Redaction | bool | None = True) -> list[Outcome]:
        """What one line holds: one outcome a record (none for a blank line)."""
        return [(event, violation) for event, violation, _ in self._record(raw, lineno, now or self._now(), found)]

    def _record(self, raw: str, lineno: int, now: datetime,
                found: secrets.Redaction | bool | None) -> list[Judged]:
        self.scorecard.lines += 1
        if found is True:
            found = self._redactor.redact(raw)
        return self._count(self._check(raw, lineno, now, found or None))

    def _count(self, outcomes: list[Judged]) -> list[Judged]:
        """A line's outcomes into the scorecard (its line already counted)."""
        card = self.scorecard
        if not outcomes:
            card.blank += 1
        card.items += max(0, len(outcomes) - 1)
        day = self._day_of(self.newest) if outcomes else None
        if day is not None:
            daily = card.days.setdefault(day, [0, 0])
            daily[0] += len(outcomes)
            daily[1] += sum(1 for event, violation, _ in outcomes if event is not None and violation is None)
        for event, violation, _ in outcomes:
            if violation is not None:
                card.violations[violation.reason] += 1
                if event is None:
                    card.dropped += 1
                else:
                    card.redacted += 1
            if event is not None:
                card.events += 1
                card.compliant += violation is None
            if self._scope is not None:  # the record's scopes: its event's, else its source's
                labels = event.get("labels.scope") if event is not None else \
                    (violation.scopes if violation is not None else ())
                self._count_scopes(labels or (), day, violation is None)
        return outcomes

    def _count_scopes(self, names: Iterable[str], day: str | None, compliant: bool) -> None:
        """One record in each of these compliance scopes, in the scorecard and its ``day``."""
        card = self.scorecard
        for name in names:
            counts = card.scopes.setdefault(name, [0, 0])
            counts[0] += 1
            counts[1] += compliant
            if day is not None:
                daily = card.scope_days.setdefault(name, {}).setdefault(day, [0, 0])
                daily[0] += 1
                daily[1] += compliant

    def _day_of(self, when: datetime | None) -> str | None:
        """The UTC day ``when`` falls in, as ``YYYY-MM-DD`` (kept while times stay in it)."""
        if when is None:
            return None
        day = self._day
        if day is not None and day[0] <= when < day[1]:
            return day[2]
        utc = when.astimezone(UTC)
        start = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
        self._day = (start, start + timedelta(days=1), start.date().isoformat())
        return self._day[2]

    def _check(self, raw: str, lineno: int, now: datetime,
               found: secrets.Redaction | None) -> list[Judged]:
        opens = secrets.opens_private_key(raw)
        if self.in_key_block or opens:
            # A raw multi-line key: every line of the block is dropped, none is echoed.
            self.in_key_block = not secrets.closes_private_key(raw)
            return [(None, self._violation(lineno, "secret", "line of a private key block",
                                           secrets.marker("private-key"), kinds=("private-key",)), ())]
        text = found.text if found is not None else raw
        kinds = found.kinds if found is not None else ()
        if len(raw) > self._max_line:  # never parsed: no line can stall the monitor
            return [(None, self._violation(lineno, "too_long", f"{len(raw):,} characters, over the {self._max_line:,} "
                                           "a line may have (LOGWARDEN_MAX_LINE); not parsed", text, kinds=kinds), ())]
        if not text.strip():
            return []  # a blank line (many files end with one) is no record: no violation
        try:
            items = self._many(text, self.source, lineno) if self._many is not None else None
            if items is None:
                return [self._judge(self._parser.parse(text, self.source, lineno), lineno, now, text, kinds)]
        except Exception as exc:  # a line its parser refused is quarantined, the flow goes on
            return [self._unparsed(exc, lineno, text, kinds)]
        return self._judge_items(items, lineno, now, kinds)

    def _judge_items(self, items: list[tuple[Event | Exception, str]], lineno: int, now: datetime,
                     kinds: tuple[str, ...]) -> list[Judged]:
        """Several records on one line (a Kubernetes EventList): each judged alone on its own
        text (its excerpt, the secrets redacted in it), named by its item."""
        out: list[Judged] = []
        for n, (item, own) in enumerate(items, 1):
            mine = tuple(k for k in kinds if secrets.marker(k) in own)
            if isinstance(item, Event):
                out.append(self._judge(item, lineno, now, own, mine))
            elif isinstance(item, TimestampError):
                out.append((None, self._violation(lineno, "bad_timestamp", str(item), own, kinds=mine, item=n), ()))
            else:
                out.append((None, self._violation(lineno, "malformed", f"{self._parser.name}: {item}", own,
                                                  kinds=mine, item=n), ()))
        return out

    def _unparsed(self, exc: Exception, lineno: int, text: str, kinds: tuple[str, ...]) -> Judged:
        """The violation of a line its parser refused: its time, its format, or a parser's own bug."""
        if isinstance(exc, TimestampError):
            return None, self._violation(lineno, "bad_timestamp", str(exc), text, kinds=kinds), ()
        if isinstance(exc, ParseError):
            return None, self._violation(lineno, "malformed", f"{self._parser.name}: {exc}", text, kinds=kinds), ()
        return None, self._violation(lineno, "malformed", f"{self._parser.name}: {UNREADABLE} "
                                     f"({type(exc).__name__})", text, kinds=kinds), ()

    def _judge(self, event: Event, lineno: int, now: datetime, text: str,
               kinds: tuple[str, ...]) -> Judged:
        """A parsed record against the standard: its time, its required fields, its secrets."""
        if self._scope is not None:  # first: a violation of an in-scope record is in scope too
            self._scope(event)
        problem = self._check_time(event, now)
        if problem is not None:
            return None, self._violation(lineno, "bad_timestamp", problem, text, event, kinds), ()
        missing = [] if self._all_required(event) else \
            [label for label, getters in self._required_getters if all(get(event) is None for get in getters)]
        if missing:
            why = f" (a {self._parser.name} record must name its {self._identity})" \
                if self._identity_label in missing else ""
            return None, self._violation(lineno, "missing_field", f"missing {', '.join(missing)}{why}",
                                         text, event, kinds), tuple(missing)
        reported = tuple(k for k in kinds if k not in self._expected)
        if reported:
            violation = self._violation(lineno, "secret", f"redacted {', '.join(reported)}",
                                        text, event, reported)
            violation.action = "redacted"
            return event, violation, ()
        return event, None, ()

    def _check_time(self, event: Event, now: datetime) -> str | None:
        ts = event.timestamp
        if ts is None:
            return "timestamp missing"
        if ts.tzinfo is None:
            if self._ts.require_timezone:
                return f"timestamp {ts.isoformat()} has no timezone"
            ts = event.timestamp = ts.replace(tzinfo=UTC)
        if ts - now > self._ts.max_future_skew:
            return f"timestamp {ts.isoformat()} is {_human(ts - now)} in the future"
        if self._ts.max_age is not None:
            reference = now if self._ts.age_reference == "wallclock" else self.newest
            if reference is not None and reference - ts > self._ts.max_age:
                return (f"timestamp {ts.isoformat()} is {_human(reference - ts)} older than "
                        f"{'now' if self._ts.age_reference == 'wallclock' else 'the newest event of this source'}")
        if self.newest is None or ts > self.newest:
            self.newest = ts
        card = self.scorecard
        if card.oldest is None or ts < card.oldest:
            card.oldest = ts
        return None

    def _violation(self, lineno: int, reason: str, detail: str, text: str,
                   event: Event | None = None, kinds: tuple[str, ...] = (), item: int | None = None) -> Violation:
        if item is None and event is not None and event.extra:
            item = event.extra.get(ITEM)
        scopes = tuple(event.get("labels.scope") or ()) if event is not None else self._source_scopes
        return Violation(self.source, lineno, reason, detail, "dropped", excerpt(text),
                         self._parser.name, event.timestamp if event else None,
                         event.id if event else None, kinds, item, scopes)

    def snapshot(self) -> dict[str, Any]:
        return {"newest": self.newest, "in_key_block": self.in_key_block,
                "scorecard": self.scorecard, "monitor": self.monitor.state}

    def restore(self, state: dict[str, Any]) -> None:
        self.newest = state["newest"]
        self.in_key_block = state["in_key_block"]
        self.scorecard = state["scorecard"]
        if not hasattr(self.scorecard, "scopes"):  # a snapshot from before scopes
            self.scorecard.scopes = {}
        if not hasattr(self.scorecard, "days"):  # a snapshot from before days
            self.scorecard.days, self.scorecard.scope_days = {}, {}
        if "monitor" in state:
            self.monitor.state = state["monitor"]


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"

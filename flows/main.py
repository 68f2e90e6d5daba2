"""The main logwarden dataflow: raw lines -> standard -> rules -> alerts.

Built by a factory so production, the demo and the tests run the very same flow with
different sources and sinks::

    chunks     = input                      # RawChunk (up to batch_size lines of one source)
    by_source  = key_on source              # (source, RawChunk)
    checked    = stateful_batch standard    # (source, Routed | Featured | EventBatch | Violation | Scorecard)
    by_group   = flat_map_batch to_rules    # (field=value, (field=value, [Event], mark, until))  one per key and chunk
    decided    = stateful_batch rules       # (field=value, Alert | Violation)
    by_princ   = flat_map_batch to_features # (principal, ([Event], until))  [with a model]
    scored     = stateful_batch features    # (principal, Alert)          [with a model]
    outputs    = merge -> one flat_map_batch filter per sink kind

Events no rule could use never leave the standard step, and every split after it works on
whole batches (one Python call per batch, not per item). ``until``: a replay's watermark on one
worker (``logwarden.replay``), before which keys fold and principals close their windows
without waiting for the end of input; None otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from logwarden.alerts import Alert
from logwarden.anomaly.features import DEFAULT_SERVICE_PATTERNS, Gate, Row, principal_of, principals_of
from logwarden.anomaly.model import AnomalyModel
from logwarden.anomaly.stream import PrincipalScorer, PrincipalState, Progress
from logwarden.event import Event, EventBatch
from logwarden.lateness import LatenessPolicy, SourceClock, SourceMark, late_event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.replay import ReplayClock
from logwarden.rows import EventRows
from logwarden.rules import Rule, RuleIndex, rules_for_key
from logwarden.rules.engine import KeyEngine, KeyState
from logwarden.sources import RawChunk
from logwarden.standard import Profile, Scorecard, SourceChecker
from logwarden.timeutil import utcnow
from logwarden.violation import Violation


@dataclass(frozen=True)
class FlowConfig:
    """What the flow needs from settings, already validated and loaded."""

    profile: Profile
    parser_options: ParserOptions
    rules: list[Rule]
    # None: a replay of finite inputs, folded in exact event-time order at their end;
    # a duration: live streams, with this much event-time disorder tolerated where nothing more
    # precise is known (the anomaly model's windows, which mix sources).
    allowed_lateness: timedelta | None = None
    # Live streams: each source's own allowed lateness (and the delay it learns within it).
    lateness: LatenessPolicy = field(default_factory=LatenessPolicy)
    input_lateness: tuple[timedelta | None, ...] = ()  # per source given to build_flow: --lateness
    scorecard_interval: timedelta | None = None  # periodic scorecards while following
    now: Callable[[], datetime] = utcnow
    model: AnomalyModel | None = None  # scores per-principal windows when set
    feature_window: timedelta = timedelta(minutes=10)
    model_gate: Gate | None = None  # when a principal's baseline is ready; None: the model's own
    service_patterns: tuple[str, ...] = DEFAULT_SERVICE_PATTERNS
    on_model: Progress | None = None  # told as principals learn (the warm-up's progress)
    on_rows: Callable[[list[Row]], None] | None = None  # told every feature row before it is scored
    # Told (step, +1 / -1) as keyed state is created and let go: the state-size metric.
    on_state: Callable[[str, int], None] | None = None
    # Recovery on: snapshots are taken. Off: Bytewax still asks every touched key for one at each
    # epoch's end, and copying thousands of states there stalls the flow, so none is made.
    snapshots: bool = True
    secret_rules: tuple[str, ...] = ()  # gitleaks-format files extending the shipped secret rules
    # A replay on one worker: its inputs' watermark (``logwarden.replay``), up to which keys fold
    # their buffers and principals close their windows before the end. None: at the end only.
    replay_clock: ReplayClock | None = None


@dataclass(frozen=True)
class Sinks:
    alerts: list[Sink[Any]]
    violations: list[Sink[Any]]
    scorecards: list[Sink[Any]]
    decisions: list[Sink[Any]] = field(default_factory=list)  # alerts, violations and scorecards together
    events: list[Sink[Any]] = field(default_factory=list)  # every compliant (or redacted) event, an EventBatch a chunk


CLOCK_TICK = timedelta(minutes=1)  # how often live runs let clock-driven rules see time pass


class Featured(NamedTuple):
    """A chunk's events of one principal on their way to its feature windows."""

    principal: str
    value: tuple[list[Event], datetime | None]  # (events, the replay's watermark after their chunk)


class Routed(NamedTuple):
    """A chunk's events of one group key on their way to its rules: one Bytewax item per key
    and chunk, not one per event."""

    key: str  # field=value
    # (the key again, events, their source's mark in live runs, the replay's watermark after their chunk)
    value: tuple[str, list[Event], SourceMark | None, datetime | None]


def _on_time(events: EventRows, clock: SourceClock, source: str, out: list[Any]) -> EventRows:
    """A live chunk's events its source's clock takes (``SourceClock.late``, in line order); the
    others become ``late_event`` violations in ``out``."""
    late = []
    for row, ts in enumerate(events.column("@timestamp")):  # type: ignore[arg-type]
        if (behind := clock.late(ts)) is not None:
            out.append(late_event(events[row], behind, source))
            late.append(row)
    return events.without(late) if late else events


def _grouped(pairs: Iterable[tuple[str, Event]]) -> dict[str, list[Event]]:
    """Events by key, each key's in the order given."""
    out: dict[str, list[Event]] = {}
    for key, event in pairs:
        found = out.get(key)
        if found is None:
            out[key] = [event]
        else:
            found.append(event)
    return out


_TIMESTAMP = attrgetter("timestamp")


def _told(clock: ReplayClock, until: datetime | None, routed: dict[str, list[Event]],
          featured: dict[str, list[Event]]) -> list[Routed | Featured]:
    """A replay on one worker: note what was sent to which key, and tell the keys the clock says
    are due its watermark (an item without events), so that one that gets no more events
    still folds what it holds."""
    for step, sent in (("rules", routed), ("features", featured)):
        for key, same in sent.items():
            times = list(map(_TIMESTAMP, same))
            clock.sent(step, key, min(times), max(times))  # type: ignore[type-var]
    return [Routed(key, (key, [], None, until)) if step == "rules" else Featured(key, ([], until))
            for step, key in clock.due(until)]


def _freeze(config: FlowConfig, state: Any) -> bytes | None:
    """A snapshot: the state pickled now (immutable, and several times faster than deepcopy)."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if config.snapshots else None


_SAFE = {"datetime": {"datetime", "date", "timedelta", "timezone"},
         "collections": {"deque", "OrderedDict", "Counter", "defaultdict"},
         "builtins": {"set", "frozenset", "dict", "list", "tuple", "bytes", "bytearray", "int", "float", "str",
                      "bool", "complex"}}


class _StateUnpickler(pickle.Unpickler):
    """Snapshots hold only our own state classes and plain values: anything else in a recovery
    database (a function, another module's object) is refused instead of being called."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _SAFE.get(module, ()):
            return super().find_class(module, name)
        if module.startswith("logwarden."):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(f"recovery snapshot refers to {module}.{name}, which is not logwarden state")


def _thaw(resume: Any) -> Any:
    return _StateUnpickler(io.BytesIO(resume)).load() if isinstance(resume, bytes) else resume


class _Held:
    """Tells ``FlowConfig.on_state`` once when a key's state exists and once when it is let go."""

    def __init__(self, config: FlowConfig, step: str) -> None:
        self._fn, self._step, self._held = config.on_state, step, False

    def hold(self) -> None:
        if self._fn is not None and not self._held:
            self._held = True
            self._fn(self._step, 1)

    def verdict(self, keep: bool) -> bool:
        """RETAIN (False) or DISCARD (True), reporting a discard."""
        if not keep and self._held and self._fn is not None:
            self._held = False
            self._fn(self._step, -1)
        return not keep


class _StandardLogic(StatefulBatchLogic[RawChunk, Any, dict[str, Any]]):
    """Per source: parse and check its chunks in order (one ``SourceChecker``)."""

    def __init__(self, config: FlowConfig, resume: dict[str, Any] | None, emit_events: bool = False) -> None:
        self._config = config
        self._emit_events = emit_events
        self._checker: SourceChecker | None = None
        self._resume = _thaw(resume)
        self._clock: SourceClock | None = None  # live runs: the source's lateness and learned delay
        self._next_card: datetime | None = None
        self._index = RuleIndex(config.rules)

    def _checker_for(self, chunk: RawChunk) -> SourceChecker:
        if self._checker is None:
            parser = build_parser(chunk.fmt, self._config.parser_options)
            self._checker = SourceChecker(self._config.profile, parser, chunk.source,
                                          self._config.now, self._config.secret_rules,
                                          self._config.parser_options.max_line)
            resume = dict(self._resume or {})
            clock = resume.pop("lateness", None)
            if self._config.allowed_lateness is not None:  # live: the source's own clock
                bound = self._config.lateness.bound(chunk.source, chunk.fmt, chunk.lateness)
                self._clock = clock if isinstance(clock, SourceClock) else SourceClock(bound)
                self._clock.bound = bound  # a restart may change it
            if resume:  # an empty snapshot ({}) comes from a source that had no chunk yet
                self._checker.restore(resume)
        return self._checker

    def on_batch(self, values: list[RawChunk]) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        rules = self._index
        model = self._config.model is not None
        replay = self._config.replay_clock
        for chunk in values:
            if not chunk.lines:  # an input's end, told by an empty last chunk
                if replay is not None and chunk.last:
                    replay.finished(chunk.source)
                continue
            checker = self._checker_for(chunk)
            clock = self._clock
            # events built only where they are passed on (``EventRows``)
            events, others = checker.check_batch(chunk.lines, chunk.first_line)
            out.extend(others)
            if clock is not None:  # live: an event behind its source's allowed lateness is a violation
                events = _on_time(events, clock, chunk.source, out)
            mark = clock.mark(chunk.source) if clock is not None else None
            until = None  # the replay's watermark now that this chunk is checked
            if replay is not None:
                replay.advance(chunk.source, checker.floor(self._config.now()), checker.newest)
                if chunk.last:
                    replay.finished(chunk.source)
                until = replay.watermark()
            thin = self._config.allowed_lateness is None  # a replay: folded in event-time order
            routed = _grouped((key, e) for key, (_, e) in rules.route(events, thin=thin))
            out.extend(Routed(key, (key, same, mark, until)) for key, same in routed.items())
            featured = _grouped(principals_of(events)) if model else {}
            out.extend(Featured(p, (same, until)) for p, same in featured.items())
            if replay is not None:
                out.extend(_told(replay, until, routed, featured))
            if self._emit_events and len(events):
                out.append(EventBatch(list(events)))
        interval = self._config.scorecard_interval
        if interval is not None and self._next_card is None:
            self._next_card = self._config.now() + interval
        return out, self.RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        interval = self._config.scorecard_interval
        self._next_card = self._config.now() + interval if interval else None
        return self._card(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        last = self._checker.finish() if self._checker is not None else []
        return [*last, *self._card()], self.RETAIN

    def notify_at(self) -> datetime | None:
        return self._next_card

    def _card(self) -> list[Scorecard]:
        if self._checker is None:
            return []
        card = self._checker.scorecard
        if self._clock is not None:
            card.allowed_lateness = self._clock.bound.total_seconds()
            card.watermark_delay = self._clock.learned.total_seconds()
        return [card]

    def snapshot(self) -> bytes | None:
        if self._checker is None:
            return _freeze(self._config, self._resume or {})
        state = self._checker.snapshot()
        if self._clock is not None:
            state["lateness"] = self._clock
        return _freeze(self._config, state)


class _RulesLogic(StatefulBatchLogic[tuple[str, list[Event], SourceMark | None, datetime | None], Any, KeyState]):
    """Per group key (``source.ip=1.2.3.4``): the rules that group by that field.

    Bytewax does not pass the key to the builder, so the items carry it again and the engine
    is built on the first batch (or from the resumed state, which holds the key).
    """

    def __init__(self, config: FlowConfig, resume: bytes | KeyState | None) -> None:
        self._config = config
        resume = _thaw(resume)
        self._engine: KeyEngine | None = None
        self._wake: datetime | None = None
        self._last = utcnow()  # when (on the clock) this key last had events
        self._until: datetime | None = None  # a replay's watermark, the newest this key was told
        self._held = _Held(config, "rules")
        if resume is not None:
            self._engine = self._build(resume.key, resume)
            self._held.hold()
            self._schedule()  # resumed after a restart: its buffer still folds once the key goes quiet

    def _build(self, key: str, state: KeyState | None) -> KeyEngine:
        return KeyEngine(key, rules_for_key(self._config.rules, key),
                         self._config.allowed_lateness, state)

    def on_batch(self, values: list[tuple[str, list[Event], SourceMark | None, datetime | None]],
                 ) -> tuple[Iterable[Any], bool]:
        if self._engine is None:
            if not any(same for _, same, _, _ in values):  # a replay's watermark for a key with nothing left
                return [], self.DISCARD
            self._engine = self._build(values[0][0], None)
            self._held.hold()
        engine = self._engine
        now = self._last = utcnow()
        live = self._config.allowed_lateness is not None
        events = [e for _, same, _, _ in values for e in same]
        marks = [mark for _, same, mark, _ in values for _ in same] if live else None
        alerts, late = engine.on_events(events, marks, now)  # type: ignore[arg-type]
        until = max((w for *_, w in values if w is not None), default=None)
        if until is not None:  # a replay's watermark: what lies before it folds now
            alerts += engine.fold_before(until)
            self._until = until
        # While following, a key that goes quiet still gets its buffer folded and its bursts
        # closed once its sources' lateness has passed on the clock.
        self._schedule()
        out: list[Alert | Violation] = [*late, *alerts]
        return out, self._held.verdict(not engine.idle(self._until))

    def _schedule(self) -> None:
        """Live runs: wake when a quiet key's buffer may be folded, and every minute for
        clock-driven rules."""
        engine = self._engine
        self._wake = None
        if self._config.allowed_lateness is None or engine is None:
            return
        wait = engine.quiet_wait()
        if wait is not None:
            self._wake = max(self._last + wait, utcnow())
        if engine.clock_driven:
            tick = utcnow() + CLOCK_TICK
            self._wake = min(self._wake, tick) if self._wake else tick

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        if self._engine is None:
            return [], self.DISCARD
        engine = self._engine
        now = utcnow()
        out = engine.on_quiet(now, now - self._last)
        out += engine.tick(now)
        self._schedule()
        return out, self._held.verdict(not engine.idle() or engine.clock_driven)

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        self._wake = None
        return (self._engine.flush() if self._engine else []), self._held.verdict(False)

    def notify_at(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> bytes | None:
        assert self._engine is not None
        return _freeze(self._config, self._engine.state)


class _EndOfInput:
    """A replay's end: Bytewax calls ``on_eof`` key by key, and scoring each principal's last
    windows alone costs a vectorized call each. The first call of a worker scores every pending
    principal of that worker (and flow) in one call; the others pick up their share.

    Keyed by OS thread id, not ``threading.local``: Bytewax's worker threads get a fresh Python
    thread state each time they take the GIL, which empties thread-local data."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.live: dict[tuple[int, int], weakref.WeakSet[_FeatureLogic]] = {}
        self.ready: dict[int, list[Alert]] = {}

    def register(self, flow: int, logic: _FeatureLogic) -> None:
        with self._lock:
            self.live.setdefault((flow, threading.get_ident()), weakref.WeakSet()).add(logic)

    def take(self, flow: int, logic: _FeatureLogic, scorer: PrincipalScorer) -> list[Alert]:
        with self._lock:
            found = self.ready.pop(id(logic), None)
            if found is not None:
                return found
            pending = [lg for lg in self.live.pop((flow, threading.get_ident()), ())
                       if lg is not logic and lg._state is not None and lg._state.windows]
        assert logic._state is not None
        states = [logic._state] + [lg._state for lg in pending]  # type: ignore[misc]
        mine, *theirs = scorer.close_many(states, None)
        with self._lock:
            self.ready.update((id(lg), alerts) for lg, alerts in zip(pending, theirs, strict=True))
        return mine


_EOF = _EndOfInput()


class _FeatureLogic(StatefulBatchLogic[tuple[list[Event], datetime | None], Any, PrincipalState]):
    """Per principal: feature windows, scored in batches when they close."""

    def __init__(self, config: FlowConfig, resume: bytes | PrincipalState | None) -> None:
        assert config.model is not None
        self._config = config
        resume = _thaw(resume)
        self._scorer = PrincipalScorer(config.model, config.feature_window, config.allowed_lateness,
                                       gate=config.model_gate, service_patterns=config.service_patterns,
                                       on_progress=config.on_model, on_rows=config.on_rows)
        self._state = resume
        self._live = config.allowed_lateness is not None
        self._held = _Held(config, "features")
        if resume is not None:
            self._held.hold()
        if not self._live:
            _EOF.register(id(config), self)

    def on_batch(self, values: list[tuple[list[Event], datetime | None]]) -> tuple[Iterable[Any], bool]:
        events = [e for same, _ in values for e in same]
        if self._state is None:
            if not events:  # a replay's watermark for a principal with nothing left
                return [], self.DISCARD
            self._state = PrincipalState(principal_of(events[0]) or "?")
            self._held.hold()
        alerts = self._scorer.add(self._state, events)
        until = max((w for _, w in values if w is not None), default=None)
        if until is not None:  # a replay's watermark: the windows it has closed are scored now
            told = any(not same for same, _ in values)  # told it with no events: it may get none again
            alerts += self._scorer.close_before(self._state, until, wait=not told)
        return alerts, self.RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        return self._flush()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self._live or self._state is None:
            return self._flush()
        return _EOF.take(id(self._config), self, self._scorer), self._held.verdict(False)

    def notify_at(self) -> datetime | None:
        # Live: a quiet principal's last windows still close once the lateness has passed.
        if self._live and self._state is not None and self._state.windows:
            return utcnow() + (self._scorer.lateness or timedelta(0)) + self._scorer.width
        return None

    def _flush(self) -> tuple[Iterable[Any], bool]:
        if self._state is None:
            return [], self.DISCARD
        return self._scorer.close(self._state, None), self._held.verdict(self._live)

    def snapshot(self) -> bytes | None:
        assert self._state is not None
        return _freeze(self._config, self._state)


def build_flow(config: FlowConfig, source: Source[RawChunk] | list[Source[RawChunk]], sinks: Sinks,
               flow_id: str = "logwarden") -> Dataflow:
    flow = Dataflow(flow_id)
    sources = source if isinstance(source, list) else [source]
    reads = [op.input(f"read_{i}" if i else "read", flow, s) for i, s in enumerate(sources)]
    for i, own in enumerate(config.input_lateness):
        if own is not None:  # --input X --lateness D: its chunks carry D
            reads[i] = op.map(f"lateness_{i}", reads[i], lambda c, own=own: dataclasses.replace(c, lateness=own))
    chunks = reads[0] if len(reads) == 1 else op.merge("inputs", *reads)  # RawChunk
    by_source = op.key_on("by_source", chunks, lambda c: c.source)  # (source, RawChunk)
    emit_events = bool(sinks.events)
    checked = op.stateful_batch("standard", by_source,
                                lambda resume: _StandardLogic(config, resume, emit_events))
    # (source, Routed | Violation | Scorecard)
    by_group = op.flat_map_batch("to_rules", checked,
                                 lambda batch: [v for _, v in batch if type(v) is Routed])
    # (field=value, (field=value, [Event], mark, until))
    decided = op.stateful_batch("rules", by_group, lambda resume: _RulesLogic(config, resume))
    # (field=value, Alert | Violation)
    streams = [checked, decided]
    if config.model is not None:
        by_principal = op.flat_map_batch("to_features", checked,
                                         lambda batch: [v for _, v in batch if type(v) is Featured])
        # (principal, ([Event], until))
        streams.append(op.stateful_batch("features", by_principal, lambda resume: _FeatureLogic(config, resume)))
        # (principal, Alert)
    everything = op.merge("decisions", *streams)
    _out(everything, Violation, sinks.violations, "violations")
    _out(everything, Alert, sinks.alerts, "alerts")
    _out(everything, Scorecard, sinks.scorecards, "scorecards")
    _out(everything, EventBatch, sinks.events, "events")
    _out(everything, (Alert, Violation, Scorecard), sinks.decisions, "decisions")
    return flow


def _out(stream: Any, kind: type | tuple[type, ...], sinks: list[Sink[Any]], name: str) -> None:
    if not sinks:
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    picked = op.flat_map_batch(f"only_{name}", stream, lambda batch: [kv for kv in batch if type(kv[1]) in kinds])
    for i, sink in enumerate(sinks):
        op.output(f"{name}_{i}", picked, sink)

"""Assembling and running the flow for the command line (kept apart from argument parsing)."""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import structlog

from logwarden import secrets
from logwarden.alerts import Alert
from logwarden.audit.retention import run_retention
from logwarden.audit.setup import Trails, build_trails, mark_lineage, who
from logwarden.errors import ConfigError, LogwardenError
from logwarden.incidents.dispatch import Dispatcher
from logwarden.incidents.setup import build_notifier, build_store, dispatch_policy
from logwarden.incidents.store import IncidentStore
from logwarden.incidents.waiting import WaitingUpdates
from logwarden.lateness import LatenessPolicy
from logwarden.parsers import ParserOptions
from logwarden.parsers.mapping import load_alias_file
from logwarden.replay import ReplayClock
from logwarden.rules.loader import RuleSet, default_rule_files, load_rules, sigma_files
from logwarden.rules.new_term import NewTermRule
from logwarden.rules.sigma import Prefetch
from logwarden.rules.terms import RedisTermStore
from logwarden.settings import Settings
from logwarden.sources import resolve_inputs
from logwarden.standard import Scorecard, load_profile

if TYPE_CHECKING:  # numpy loads only for commands that run a model
    from logwarden.anomaly.stream import ModelProgress

log = structlog.get_logger("logwarden.run")
RECOVERY_PARTITIONS = 4  # sqlite partitions of the recovery database; any worker count works
GC_THRESHOLDS = (50_000, 20, 100)  # the collector's generations, set for the run (see run_flow)


@dataclass
class RunResult:
    scorecards: list[Scorecard] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    store: IncidentStore | None = None
    undelivered: int = 0
    model: ModelProgress | None = None  # the model's warm-up, when a model ran
    stopped_by: str | None = None  # SIGTERM or SIGINT, when a signal stopped the run


def parser_options(settings: Settings) -> ParserOptions:
    aliases = load_alias_file(settings.json_mapping) if settings.json_mapping else {}
    return ParserOptions(syslog_year=settings.syslog_year, json_aliases=aliases, max_line=settings.max_line)


def secret_rules(settings: Settings) -> tuple[str, ...]:
    """The user's secret-rule files, loaded once here so that a bad file stops the run before any
    input (``ConfigError`` naming the file and the rule)."""
    paths = tuple(str(p) for p in settings.secret_rules)
    secrets.redactor_for(paths)
    return paths


def _sigma_cache(settings: Settings) -> Path | None:
    return settings.cache_dir / "sigma" if settings.cache_dir else None


def start_sigma(settings: Settings) -> Prefetch | None:
    """Sigma rules not converted yet: convert them in another process while the run starts."""
    files = sigma_files(list(settings.rules) if settings.rules else default_rule_files())
    return Prefetch.start(files, settings.sigma_pipelines, _sigma_cache(settings))


def load_rule_set(settings: Settings, prefetch: Prefetch | None = None) -> RuleSet:
    """The rules in force; raises ``RuleLoadError`` listing every problem, before any input.
    ``prefetch``: Sigma conversions under way in another process (``start_sigma``)."""
    cache = _sigma_cache(settings)
    if prefetch is not None:
        prefetch.wait()
        cache = prefetch.cache
    try:
        rule_set = load_rules(list(settings.rules) if settings.rules else default_rule_files(),
                              settings.internal_networks, sigma_pipelines=settings.sigma_pipelines,
                              sigma_partial=settings.sigma_partial, sigma_cache=cache)
    finally:
        if prefetch is not None:
            prefetch.close()
    for line in rule_set.not_loaded:  # --sigma-partial: said, not skipped
        log.warning("sigma_rule_not_loaded", rule=line)
    return rule_set


def default_model_path() -> Path | None:
    for candidate in (Path(__file__).resolve().parents[1] / "models" / "default.skops",
                      Path("/usr/share/logwarden/models/default.skops")):
        if candidate.is_file():
            return candidate
    return None


def load_model(settings: Settings) -> Any:
    """The anomaly model in force: ``--model``, else the shipped default; None when disabled."""
    if not settings.model_enabled:
        return None
    path = settings.model or default_model_path()
    if path is None:
        return None
    from logwarden.anomaly.model import AnomalyModel

    return AnomalyModel.load(path)


def model_gate(settings: Settings) -> Any:
    from logwarden.anomaly.features import Gate

    return Gate(settings.model_warmup, settings.model_min_windows)


def run_flow(settings: Settings, inputs: list[str], fmt: str | None, *, alerts_path: Path | None,
             violations_path: Path | None, follow: bool = False,
             on_alert: Callable[[Alert], None] | None = None,
             on_scorecards: Callable[[list[Scorecard]], None] | None = None,
             lateness: dict[str, timedelta] | None = None) -> RunResult:
    """Run the main flow; ``lateness``: an input's own allowed lateness (``--lateness``), by input."""
    # Imported here: only running a flow needs bytewax loaded.
    from bytewax.run import cli_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.sinks import BatchSink, JsonLinesSink, TrailSink, each

    # Sigma rules not converted yet convert on another core while the model loads (a second or two)
    prefetch = start_sigma(settings)
    try:
        model = load_model(settings)
    except BaseException:
        if prefetch is not None:
            prefetch.wait()
            prefetch.close()
        raise
    rule_set = load_rule_set(settings, prefetch)
    metrics = None
    if settings.metrics_port is not None:
        from logwarden.metrics import Metrics

        metrics = Metrics()
        metrics.serve(settings.metrics_port + (settings.process_id or 0), settings.metrics_addr)
    store = build_store(settings, rule_set)  # the rule set gives each rule its noise budget
    notifier = build_notifier(settings)
    trails = build_trails(settings)
    options = parser_options(settings)
    sources, described, own_lateness = build_sources(settings, inputs, fmt, options, follow, lateness)
    policy = lateness_policy(settings)
    rules = rule_set.enabled()
    backend = store.backend
    terms = None
    if hasattr(backend, "client"):  # Redis: new_term rules keep their learned terms there too
        terms = RedisTermStore(backend.client, backend.prefix)
        rules = [dataclasses.replace(r, store=terms) if isinstance(r, NewTermRule) else r for r in rules]
    from logwarden.anomaly.stream import ModelProgress

    gate = model_gate(settings)
    progress = ModelProgress(gate, model.portable) if model is not None else None
    config = FlowConfig(
        profile=load_profile(settings.standard_profile),
        parser_options=options,
        rules=rules,
        # The anomaly model's windows mix sources: they wait for the largest lateness here.
        allowed_lateness=policy.ceiling([d.get("format", "") for d in described] if fmt is None else [fmt],
                                        [v for v in own_lateness if v is not None]) if follow else None,
        lateness=policy,
        input_lateness=tuple(own_lateness),
        scorecard_interval=settings.scorecard_interval if follow else None,
        model=model,
        feature_window=settings.feature_window,
        model_gate=gate,
        service_patterns=tuple(settings.service_accounts),
        on_model=progress.update if progress is not None else None,
        on_state=metrics.state if metrics is not None else None,
        snapshots=settings.recovery_dir is not None,
        secret_rules=secret_rules(settings),
        replay_clock=replay_clock(settings, sources, described, follow),
    )
    if metrics is not None and progress is not None:
        metrics.watch_model(progress)
    if metrics is not None and settings.recovery_dir is not None:
        metrics.watch_recovery(settings.recovery_dir)
    result = RunResult(store=store, model=progress)

    def take_alert(alert: Alert) -> None:
        result.alerts.append(alert)
        if metrics is not None:
            metrics.alert(alert)
        if on_alert is not None:
            on_alert(alert)

    nudge = threading.Event()  # the dispatcher delivers as soon as incidents change
    # Redis: updates wait through an outage instead of stopping the flow (spilled, if it lasts, to
    # the recovery directory, else the working directory)
    waiting = WaitingUpdates(store.apply, settings.recovery_dir or Path.cwd(), ping=backend.client.ping) \
        if hasattr(backend, "client") else None

    def apply_alerts(alerts: list[Alert]) -> None:
        changed = waiting.apply(alerts) if waiting is not None else store.apply(alerts)
        if changed:
            nudge.set()
        if metrics is not None:
            metrics.incident_changes(changed)
            if waiting is not None:
                metrics.redis(waiting.outages, waiting.waiting)
        if trails is not None and changed:
            trails.decisions.append([("incident", None, {"id": i.id, "state": i.state, "rule_id": i.rule_id,
                                                          "entity": i.entity, "count": i.count, "version": i.version,
                                                          "severity": i.severity, "rules": list(i.rule_stats()),
                                                          "entities": i.all_entities(), "first_seen": i.first_seen,
                                                          "by": "logwarden"})
                                      for i in changed])

    # what waits for Redis is part of the recovery state (a kill during an outage loses none of it)
    incident_sink = BatchSink(apply_alerts, "incidents", state=waiting.state, restore=waiting.restore) \
        if waiting is not None else BatchSink(apply_alerts, "incidents")
    alert_sinks: list[Any] = [BatchSink(each(take_alert), "alerts"), incident_sink]
    violation_sinks: list[Any] = [BatchSink(each(metrics.violation), "metrics")] if metrics is not None else []
    for path, sinks in ((alerts_path, alert_sinks), (violations_path, violation_sinks)):
        if path is not None:
            sinks.append(JsonLinesSink(path))  # anew, or cut back to the snapshot a recovered run resumes
    decision_sinks: list[Any] = []
    event_sinks: list[Any] = []
    if trails is not None:
        trails.decisions.append([("run", None, {
            "by": who(), "inputs": described, "process": settings.process_id,
            "recovery": str(settings.recovery_dir) if settings.recovery_dir else None,
            "ruleset_version": rule_set.version, "rule_files": [str(f) for f in rule_set.files],
            "rules": [r.meta.id for r in rule_set.enabled()], "standard": config.profile.name,
            "model": {"threshold": config.model.threshold_, "files": config.model.card_.get("files"),
                      "trained": config.model.card_.get("training", {}).get("to")}
            if config.model is not None and hasattr(config.model, "card_") else None,
            "follow": follow})])
        decision_sinks.append(TrailSink(trails.decisions, "audit_decisions", settings.recovery_dir))
        if trails.events is not None:
            event_sinks.append(TrailSink(trails.events, "audit_events", settings.recovery_dir))
    latest: dict[str, Scorecard] = {}

    def take_scorecard(card: Scorecard) -> None:  # periodic while following, then final
        latest[card.source] = card
        result.scorecards = sorted(latest.values(), key=lambda c: c.source)
        if metrics is not None:
            metrics.scorecard(card, card.newest)
        if on_scorecards is not None:
            on_scorecards(result.scorecards)

    flow = build_flow(config, sources, Sinks(alerts=alert_sinks, violations=violation_sinks,
                                            scorecards=[BatchSink(each(take_scorecard), "scorecards")],
                                            decisions=decision_sinks, events=event_sinks))
    dispatcher = stop = thread = None
    if notifier is not None:
        on_report = (lambda report: metrics.delivery(report, len(store.outbox()))) if metrics is not None else None
        dispatcher = Dispatcher(store, notifier, dispatch_policy(settings), on_report=on_report)
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 1.0, nudge), name="dispatch",
                                  daemon=True)
        thread.start()
    retry_stop = threading.Event()
    if waiting is not None and terms is not None:  # what waits for Redis is tried each second, events or not

        def retry_loop() -> None:
            while not retry_stop.wait(1.0):
                if waiting.waiting:
                    apply_alerts([])
                terms.retry()

        threading.Thread(target=retry_loop, name="redis-retry", daemon=True).start()
    retention_stop = None
    if trails is not None and follow:
        retention_stop = threading.Event()

        def retention_loop() -> None:  # a long-running flow applies retention hourly
            while not retention_stop.wait(3600):
                run_retention(settings, "logwarden")

        threading.Thread(target=retention_loop, name="retention", daemon=True).start()
    # Everything loaded so far (rules, model, parsers) lives as long as the run: keep it out of
    # the collector's full passes, whose pauses otherwise grow with it and show as alert latency.
    gc.collect()
    gc.freeze()
    # A flow allocates millions of short-lived objects (lines, columns, events) and holds few
    # cycles: with the default thresholds (700, 10, 10) the collector ran 2,200 times and took
    # 1.1 s of an 8 s replay (benchmarks/bench_flow.py); at these, 14 times and 0.2 s, with the
    # same peak memory.
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("flow_started", inputs=described, workers=settings.workers, process=settings.process_id,
             processes=len(settings.addresses or [None]), follow=follow,
             recovery=str(settings.recovery_dir) if settings.recovery_dir else None,
             redis=settings.redis_url is not None, slack=notifier is not None, audit=trails is not None)
    stop_signal = StopSignal().install()
    started = time.perf_counter()
    try:
        cli_main(flow, workers_per_process=settings.workers, process_id=settings.process_id,
                 addresses=settings.addresses, epoch_interval=settings.snapshot_interval,
                 recovery_config=recovery_config(settings, trails))
        stop_signal.ended()
    except (Exception, KeyboardInterrupt) as exc:  # Bytewax wraps what a source or step raised
        stop_signal.ended()
        if stop_signal.received is None:
            ours = own_cause(exc)
            if ours is None:
                raise
            raise ours from None
        # SIGTERM (docker stop, Kubernetes) or Ctrl-C: an orderly stop. What was decided is
        # written, delivered and sealed below; a recovery directory resumes from its snapshot.
        log.info("stop_requested", signal=stop_signal.received)
        result.stopped_by = stop_signal.received
    finally:
        stop_signal.ended()  # a signal while draining below is noted, not raised
        retry_stop.set()
        if waiting is not None and waiting.retry():  # what waited for Redis, before the last notifications
            nudge.set()
        if terms is not None:
            terms.retry()
        if dispatcher is not None and stop is not None and thread is not None:
            stop.set()
            nudge.set()
            thread.join()
            try:
                dispatcher.drain(settings.notify_drain_timeout.total_seconds())
                result.undelivered = len(store.outbox())
            except redis.RedisError:  # away at the end: the outbox keeps them for `incidents notify`
                log.warning("notifications_not_drained", reason="Redis does not answer")
        if retention_stop is not None:
            retention_stop.set()
        if trails is not None:
            if progress is not None:  # the model's warm-up as the run leaves it (the report shows it)
                scored, learning = progress.counts()
                left = progress.warmup_left()
                trails.decisions.append([("model", None, {
                    "scored": scored, "learning": learning, "portable": progress.portable,
                    "warmup_left": left.total_seconds() if left is not None else None, "summary": progress.summary()})])
            trails.seal()  # each run's records end in sealed segments
        seconds = time.perf_counter() - started
        lines = sum(card.lines for card in result.scorecards)  # this process's sources
        log.info("flow_stopped", alerts=len(result.alerts), undelivered=result.undelivered, lines=lines,
                 seconds=round(seconds, 2), lines_per_second=round(lines / seconds) if seconds > 0 else None)
        stop_signal.uninstall()
    if waiting is not None and (still := waiting.finish()) is not None:
        raise LogwardenError(still)
    return result


class StopSignal:
    """While a flow runs: SIGTERM and SIGINT stop it in order instead of killing it. The handler
    notes the signal and, while the dataflow runs (``flowing``), raises in the main thread;
    Bytewax, which checks for signals as it runs, then ends the dataflow, and ``run_flow`` drains
    and seals as at the end of any run. A signal during that drain is noted, not raised. Only in
    the main thread (where Python delivers signals); elsewhere it does nothing.

    Bytewax ends the dataflow by unwinding a Rust panic, whose hook prints a panic message (and a
    backtrace under RUST_BACKTRACE) on stderr: an orderly stop is no crash, so from the signal
    until the dataflow has ended, stderr passes through a filter that drops that one block."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.flowing = True
        self._previous: dict[int, Any] = {}
        self._filter: _PanicFilter | None = None

    def install(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def ended(self) -> None:
        """The dataflow has ended (or failed): signals from now on are noted, not raised."""
        self.flowing = False
        if self._filter is not None:
            self._filter.close()
            self._filter = None

    def uninstall(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _stop(self, signum: int, frame: object) -> None:
        first = self.received is None
        if first:
            self.received = signal.Signals(signum).name
        if first and self.flowing:
            self._filter = _PanicFilter()
            raise KeyboardInterrupt


class _PanicFilter:
    """Points file descriptor 2 at a pipe whose reader copies every line to the real stderr but
    the block of a Rust panic message ("thread '...' panicked at ..." through its "note:" line)."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._copy, args=(read,), name="stderr-filter", daemon=True)
        self._thread.start()

    def _copy(self, read: int) -> None:
        dropping = after = False
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not dropping and line.startswith(b"thread '") and b"' panicked at " in line:
                    dropping = True
                if dropping:
                    dropping, after = not line.startswith(b"note: "), line.startswith(b"note: ")
                elif not (after and not line.strip()):  # and the blank line after it
                    os.write(self._saved, line)
                    after = False

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # the pipe's last writer is gone: the reader sees its end
        self._thread.join(5)
        os.close(self._saved)


def own_cause(exc: BaseException | None) -> LogwardenError | None:
    """The LogwardenError (a clear, specific error) somewhere in an exception's chain."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, LogwardenError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def build_sources(settings: Settings, inputs: list[str], fmt: str | None, options: ParserOptions,
                  follow: bool, lateness: dict[str, timedelta] | None = None,
                  ) -> tuple[list[Any], list[dict[str, str]], list[timedelta | None]]:
    """The Bytewax sources of ``--input``s (files, globs, Redis streams, Kafka topics), how each
    is described in the audit trail (never with a password), and each source's own allowed
    lateness (``--lateness``) or None."""
    from logwarden.sources.bytewax.files import DirectorySource, LogFileSource
    from logwarden.sources.redis_streams import is_stream_url, parse_stream_url
    from logwarden.sources.watch import is_pattern, pattern_of

    size, poll = settings.batch_size, settings.follow_poll
    own = lateness or {}
    sources: list[Any] = []
    described: list[dict[str, str]] = []
    latenesses: list[timedelta | None] = []
    files: dict[timedelta | None, list[str]] = {}  # files read together, per --lateness
    for text in inputs:
        if is_stream_url(text):
            from logwarden.sources.bytewax.redis_stream import RedisStreamSource

            url = parse_stream_url(text, settings.redis_url.get_secret_value() if settings.redis_url else None,
                                   settings.stream_field)
            sources.append(RedisStreamSource(url, fmt, options, size, follow, settings.stream_poll))
            described.append({"stream": url.redacted()})
        elif text.startswith("kafka://"):
            from logwarden.sources.bytewax.kafka import kafka_source
            from logwarden.sources.kafka import parse_kafka_url

            kafka = parse_kafka_url(text)
            sources.append(kafka_source(kafka, fmt, options, size, follow, settings.stream_poll,
                                        {k: v.get_secret_value() for k, v in settings.kafka_config.items()}))
            described.append({"kafka": kafka.describe()})
        elif text != "-" and is_pattern(text):
            sources.append(DirectorySource(pattern_of(text), fmt, options, size, follow, poll))
            described.append({"pattern": pattern_of(text)})
        else:
            files.setdefault(own.get(text), []).append(text)
            continue
        latenesses.append(own.get(text))
    readers: list[Any] = []  # the files first, as before
    read: list[dict[str, str]] = []
    for paths in files.values():  # one reader per --lateness given (dicts keep their order)
        resolved = resolve_inputs(paths, fmt, options)
        readers.append(LogFileSource(resolved, size, follow, poll))
        read.extend({"path": p, "format": f} for p, f in resolved)
    return readers + sources, read + described, list(files) + latenesses


def replay_clock(settings: Settings, sources: list[Any], described: list[dict[str, str]],
                 follow: bool) -> ReplayClock | None:
    """A replay's watermark (``logwarden.replay``), for a replay of files on one worker: items
    from several workers may overtake one another, and a glob's, a stream's or a topic's sources
    are not all known at the start. Otherwise None: keys and principals fold at the end."""
    from logwarden.sources.bytewax.files import LogFileSource

    if follow or settings.workers != 1 or len(settings.addresses or [None]) != 1:
        return None
    if not sources or not all(isinstance(s, LogFileSource) for s in sources):
        return None
    clock = ReplayClock((d["path"] for d in described), every=max(timedelta(days=1), settings.feature_window))
    for source in sources:
        source.pace = clock  # read abreast in event time
    return clock


def lateness_policy(settings: Settings) -> LatenessPolicy:
    return LatenessPolicy(settings.allowed_lateness, dict(settings.source_lateness))


def recovery_config(settings: Settings, trails: Trails | None = None) -> Any:
    """Bytewax's recovery config, creating the recovery database on first use (after noting where
    the audit trails stand: what a resumed run may write again begins there)."""
    if settings.recovery_dir is None:
        return None
    from bytewax.recovery import RecoveryConfig, init_db_dir

    directory = settings.recovery_dir
    # Bytewax keeps its snapshots pickled: only this user may read or write them.
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    if not any(directory.glob("part-*.sqlite3")):
        if settings.process_id in (None, 0):
            if trails is not None:
                mark_lineage(directory, trails)
            init_db_dir(directory, RECOVERY_PARTITIONS)
        else:  # the first process creates it; the others wait for it
            deadline = time.monotonic() + 60
            while len(list(directory.glob("part-*.sqlite3"))) < RECOVERY_PARTITIONS:
                if time.monotonic() > deadline:
                    raise ConfigError(f"recovery directory {directory}: process 0 has not created it")
                time.sleep(0.2)
            time.sleep(0.5)  # the last partition file exists; let its creation finish
    return RecoveryConfig(directory)


def print_incidents(incidents: list[Any], out: Any = None) -> None:
    out = out or sys.stdout
    if not incidents:
        return
    print(f"\n{'incident':<15} {'state':<13} {'severity':<9} {'count':>6}  rules / entities", file=out)
    for i in sorted(incidents, key=lambda x: x.first_seen):
        print(f"{i.id:<15} {i.state:<13} {i.severity:<9} {i.count:>6}  {','.join(i.rule_stats())} "
              f"{','.join(i.all_entities())}", file=out)


def print_budget(store: IncidentStore, out: Any = None) -> None:
    """A line per detector and day past its noise budget, after the incident table."""
    out = out or sys.stdout
    report = store.budget_report()
    if report:
        print(file=out)
    for r in report:
        print(f"over budget: {r.rule_id} on {r.day}: {r.folded:,} alert{'s' if r.folded != 1 else ''} folded into "
              f"{r.incident_id} (budget {r.budget})", file=out)


def print_scorecards(cards: list[Scorecard], out: Any = None, scope: str | None = None) -> None:
    """The scorecard table; with ``scope``, each source's records of that compliance scope only."""
    out = out or sys.stdout
    if scope is not None:
        rows = [(c, c.scopes[scope]) for c in cards if scope in c.scopes]
        if not rows:
            print(f"no records of scope {scope!r}", file=out)
            return
        width = max(len(c.source) for c, _ in rows)
        print(f"\nscope {scope}\n{'source':<{width}}  {'format':<10} {'records':>8} {'compliant':>9}  rate", file=out)
        for c, (n, ok) in rows:
            print(f"{c.source:<{width}}  {c.dataset or '?':<10} {n:>8} {ok:>9}  {ok / n if n else 1:.1%}", file=out)
        total, good = sum(n for _, (n, _ok) in rows), sum(ok for _, (_n, ok) in rows)
        print(f"{'all':<{width}}  {'':<10} {total:>8} {good:>9}  {good / total if total else 1:.1%}", file=out)
        return
    if not cards:
        return
    width = max(len(c.source) for c in cards)
    print(f"\n{'source':<{width}}  {'format':<10} {'lines':>8} {'events':>8} {'dropped':>8} "
          f"{'redacted':>8} {'compliant':>9}  violations", file=out)
    for c in cards:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(c.violations.items())) or "-"
        blank = f" ({c.blank} blank lines, not records)" if c.blank else ""
        print(f"{c.source:<{width}}  {c.dataset or '?':<10} {c.lines:>8} {c.events:>8} "
              f"{c.dropped:>8} {c.redacted:>8} {c.compliance_rate:>8.1%}  {reasons}{blank}", file=out)

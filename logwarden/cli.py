"""The ``logwarden`` command line."""

from __future__ import annotations

import functools
import sys
import tempfile
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from logwarden.errors import LogwardenError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Audit-ready access-log policy enforcer and anomaly monitor.")
rules_app = typer.Typer(no_args_is_help=True, help="Validate and test rule files.")
app.add_typer(rules_app, name="rules")
incidents_app = typer.Typer(no_args_is_help=True, help="Incidents in Redis (LOGWARDEN_REDIS_URL).")
app.add_typer(incidents_app, name="incidents")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail (LOGWARDEN_AUDIT_DIR).")
app.add_typer(audit_app, name="audit")
retention_app = typer.Typer(no_args_is_help=True, help="Retention and purge of the audit trail.")
app.add_typer(retention_app, name="retention")
slack_app = typer.Typer(no_args_is_help=True, help="The Slack app: act on incidents from Slack.")
app.add_typer(slack_app, name="slack")
RulesOpt = Annotated[list[Path] | None,
                     typer.Option("--rules", help="rule file (repeatable; default: the shipped pack)")]

InputOpt = Annotated[list[str], typer.Option(
    "--input", "-i", help="log file, - for stdin, a directory / glob ('logs/*.log') to follow every matching "
                          "file (also ones created later and rotated ones), a Redis stream "
                          "'redis://host:6379/0?stream=logs:*' or Kafka 'kafka://broker:9092/topic' (repeatable)")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="override format detection")]
# The questions `audit search` and `evidence` both answer
EntityOpt = Annotated[str | None, typer.Option(help="records about this principal (entity, user or address)")]
UserOpt = Annotated[str | None, typer.Option(help="records of this user (user.name)")]
ResourceOpt = Annotated[str | None, typer.Option(help="resource glob, e.g. 'billing/*'")]
SourceOpt = Annotated[str | None, typer.Option(help="log source glob, e.g. '*/payments/*'")]
ScopeOpt = Annotated[str | None, typer.Option(help="compliance scope (labels.scope)")]
ActionOpt = Annotated[str | None, typer.Option(help="event.action")]
OutcomeOpt = Annotated[str | None, typer.Option(help="event.outcome: success or failure")]
RuleOpt = Annotated[str | None, typer.Option(help="records of this rule (alerts, incidents)")]
OptionalInputOpt = Annotated[list[str] | None, InputOpt.__metadata__[0]]  # run: else LOGWARDEN_INPUTS


_DEBUG = {"on": False}  # --debug: an error's traceback too


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="on an error, show its traceback too")] = False,
             ) -> None:
    _DEBUG["on"] = debug


def _settings(**overrides: object):
    from logwarden.logs import configure_logging
    from logwarden.settings import Settings

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        configure_logging(settings.log_format)  # every command logs as the settings say
        return settings
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LogwardenError(f"invalid settings: {problems}") from None


@functools.cache
def _env_settings():
    """The settings of commands without flag overrides: built once per invocation."""
    return _settings()


def _print_alert(alert) -> None:
    prefix = "resolved" if alert.resolved else "ALERT " if alert.revision == 0 else "update"
    typer.echo(f"{prefix} {alert.one_line()}")


@app.command()
def run(
    inputs: OptionalInputOpt = None,
    fmt: FormatOpt = None,
    alerts: Annotated[Path | None, typer.Option(help="write alerts here as JSON lines")] = None,
    violations: Annotated[Path | None, typer.Option(help="write violations here as JSON lines")] = None,
    scorecard: Annotated[Path | None, typer.Option(help="write the compliance scorecard (JSON)")] = None,
    follow: Annotated[bool, typer.Option(help="keep tailing files at their end")] = False,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Bytewax workers")] = None,
    standard: Annotated[Path | None, typer.Option(help="logging-standard profile (YAML)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="extra JSON/logfmt field aliases (YAML)")] = None,
    syslog_year: Annotated[int | None, typer.Option(help="year of RFC 3164 syslog lines")] = None,
    rules: RulesOpt = None,
    model: Annotated[Path | None, typer.Option(help="anomaly model (default: the shipped one)")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="rules only, no anomaly scoring")] = False,
    recovery_dir: Annotated[Path | None, typer.Option(
        help="Bytewax recovery database: a restarted run resumes from its last snapshot")] = None,
    snapshot_interval: Annotated[str | None, typer.Option(help="how often state is snapshot (e.g. 10s)")] = None,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, max=64,
                                           help="local processes of one cluster (each with -w workers)")] = 1,
    process_id: Annotated[int | None, typer.Option(help="this process's index in a multi-host cluster")] = None,
    addresses: Annotated[str | None, typer.Option(
        help="host:port of every process of a multi-host cluster, ';'-separated, in process-id order")] = None,
    log_format: Annotated[str | None, typer.Option(help="stderr logs: console or json")] = None,
    lateness: Annotated[list[str] | None, typer.Option(
        "--lateness", help="with --follow: an --input's own allowed lateness (e.g. 30s), one per --input in "
                           "the same order (default: per format; LOGWARDEN_SOURCE_LATENESS)")] = None,
    sigma_partial: Annotated[bool, typer.Option(
        "--sigma-partial", help="start with the Sigma rules that convert; list the others")] = False,
) -> None:
    """Read inputs through the standard and the rules; exit once finite inputs are consumed."""
    from logwarden.app import print_budget, print_incidents, print_scorecards, run_flow

    settings = _settings(workers=workers, standard_profile=standard, json_mapping=mapping,
                         syslog_year=syslog_year, rules=rules or None, model=model,
                         model_enabled=False if no_model else None, recovery_dir=recovery_dir,
                         snapshot_interval=snapshot_interval, process_id=process_id,
                         addresses=addresses.split(";") if addresses else None, log_format=log_format,
                         sigma_partial=True if sigma_partial else None)
    if processes > 1 and settings.process_id is None:
        from logwarden.cluster import run_local_cluster

        raise typer.Exit(run_local_cluster(sys.argv[1:], processes))
    if (settings.process_id is None) != (settings.addresses is None):
        raise LogwardenError("--process-id and --addresses go together (LOGWARDEN_PROCESS_ID, LOGWARDEN_ADDRESSES)")
    inputs = inputs or list(settings.inputs)
    if not inputs:
        raise LogwardenError("no input: give --input (repeatable) or LOGWARDEN_INPUTS")
    result = run_flow(settings, inputs, fmt, alerts_path=alerts, violations_path=violations,
                      follow=follow, on_alert=_print_alert,
                      on_scorecards=(lambda cards: _write_scorecard(scorecard, cards)) if scorecard else None,
                      lateness=_own_lateness(inputs, lateness or []))
    print_scorecards(result.scorecards)
    if result.model is not None:
        typer.echo(result.model.summary())
    if result.store is not None:
        print_incidents(result.store.list())
        print_budget(result.store)
    if result.undelivered:
        typer.echo(f"warning: {result.undelivered} incident notification(s) not delivered yet; they stay in "
                   "the outbox (logwarden incidents notify)", err=True)
    if scorecard is not None:
        _write_scorecard(scorecard, result.scorecards)
    if result.stopped_by is not None and not follow:  # a signal is how a --follow run ends; a replay's is cut short
        typer.echo(f"logwarden: stopped by {result.stopped_by} before the end of the input; the outputs hold "
                   "what was decided until then", err=True)
        raise typer.Exit(130 if result.stopped_by == "SIGINT" else 143)


def _write_scorecard(path: Path, cards) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps([c.to_dict() for c in cards], option=orjson.OPT_INDENT_2))


@app.command()
def ship(
    files: Annotated[list[str], typer.Argument(help="log files to send")],
    to: Annotated[str, typer.Option("--to", help="redis://host:6379/0?stream=NAME ('*' in NAME: each file's "
                                                 "stem); no password needed when LOGWARDEN_REDIS_URL has it")],
    fmt: FormatOpt = None,
    follow: Annotated[bool, typer.Option(help="keep sending what is appended to the files")] = False,
    maxlen: Annotated[int | None, typer.Option(help="trim the stream to about this many entries")] = None,
    merge: Annotated[bool, typer.Option(help="send all files into one stream in event-time order, as if live "
                                             "(for history and samples)")] = False,
) -> None:
    """Send log files into a Redis stream, a line an entry (with its source and format), so a
    flow reading that stream (run --input redis://...) can try the streaming path."""
    from logwarden.app import parser_options
    from logwarden.sources.redis_streams import parse_stream_url, ship_merged
    from logwarden.sources.redis_streams import ship as send

    if merge and follow:
        raise LogwardenError("ship: --merge orders whole files; it cannot --follow them")
    settings = _env_settings()
    url = parse_stream_url(to, settings.redis_url.get_secret_value() if settings.redis_url else None,
                           settings.stream_field)
    import redis

    try:
        sent = ship_merged(url, files, fmt, parser_options(settings), maxlen=maxlen,
                           chunk_size=settings.batch_size) if merge else \
            send(url, files, fmt, parser_options(settings), follow=follow, maxlen=maxlen,
                 chunk_size=settings.batch_size, poll=settings.follow_poll.total_seconds())
    except redis.RedisError as exc:
        raise LogwardenError(f"ship --to {url.redacted()}: {type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    for path, n in sent.items():
        typer.echo(f"{n:>8}  {path} -> {url.redacted()}")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="directory to write the logs and labels.jsonl into")],
    days: Annotated[int, typer.Option(min=1, max=60, help="days of activity")] = 1,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same logs)")] = 7,
    baseline_days: Annotated[int, typer.Option(min=0, max=90, help="plant-free days before, in OUT/baseline")] = 0,
    org: Annotated[str, typer.Option(help="the organisation: acme, or any other name for different "
                                          "people, service accounts and networks")] = "acme",
) -> None:
    """Write realistic multi-format logs of a small organisation, with planted attacks,
    behavioural anomalies, non-compliant lines and a labels file."""
    from logwarden.simulate import simulate as make

    written = make(out, days=days, seed=seed, baseline_days=baseline_days, org=org)
    for path, lines in written.items():
        typer.echo(f"{lines:>8}  {path}")


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="keep the simulated logs and outputs here")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w")] = 1,
) -> None:
    """Simulate an organisation's logs (two routine days, for the model to learn it, then a day with
    planted attacks) and run the flow on them (no Redis, no Slack)."""
    from logwarden.app import print_budget, print_incidents, print_scorecards, run_flow
    from logwarden.simulate import simulate as make

    base = out or Path(tempfile.mkdtemp(prefix="logwarden-demo-"))
    logs = base / "logs"
    written = make(logs, days=1, seed=7, baseline_days=2)
    inputs = sorted(str(p) for p in written if not str(p).endswith("labels.jsonl"))
    typer.echo(f"simulated {sum(written.values())} lines into {logs}")
    import os

    from logwarden.audit.setup import demo_key

    audit = {} if os.environ.get("LOGWARDEN_AUDIT_DIR") else {
        "audit_dir": base / "audit", "audit_key": os.environ.get("LOGWARDEN_AUDIT_KEY") or demo_key(base)}
    settings = _settings(workers=workers, **audit)
    result = run_flow(settings, inputs, None, alerts_path=base / "alerts.jsonl",
                      violations_path=base / "violations.jsonl", on_alert=_print_alert)
    print_scorecards(result.scorecards)
    if result.model is not None:
        typer.echo(result.model.summary())
    if result.store is not None:
        print_incidents(result.store.list())
        print_budget(result.store)
    fired = {a.alert_id for a in result.alerts}
    where = "in Redis" if settings.redis_url else "in memory"
    typer.echo(f"\n{len(fired)} alert(s), {len(result.store.list()) if result.store else 0} incident(s) "
               f"{where}; outputs in {base} (alerts.jsonl, violations.jsonl)")
    if settings.audit_dir is not None:
        typer.echo(f"audit trail in {settings.audit_dir}: check it with "
                   f"LOGWARDEN_AUDIT_KEY=$(cat {base / 'audit.key'}) logwarden audit verify {settings.audit_dir}")


@app.command()
def backtest(
    inputs: InputOpt,
    fmt: FormatOpt = None,
    rules: RulesOpt = None,
    model: Annotated[Path | None, typer.Option(help="anomaly model (default: the shipped one)")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="rules only, no anomaly scoring")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document, for tools")] = False,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Bytewax workers")] = None,
) -> None:
    """Replay past logs through the real flow with no Slack and incidents in memory, and print per
    detector: alerts and incidents a day, the top entities, and which went over their budget."""
    from logwarden.app import run_flow
    from logwarden.backtest import summarize

    settings = _settings(rules=rules or None, model=model, model_enabled=False if no_model else None,
                         workers=workers)
    # Nothing leaves a backtest: no Redis, no Slack, no audit records, no metrics, no recovery.
    settings = settings.model_copy(update={"redis_url": None, "slack_token": None, "slack_webhook_url": None,
                                           "audit_dir": None, "metrics_port": None, "recovery_dir": None})
    result = run_flow(settings, inputs, fmt, alerts_path=None, violations_path=None)
    oldest = [c.oldest for c in result.scorecards if c.oldest is not None]
    newest = [c.newest for c in result.scorecards if c.newest is not None]
    store = result.store
    assert store is not None
    opened = store.list(limit=None)  # every incident of the period, however many
    report = summarize(result.alerts, opened, min(oldest, default=None), max(newest, default=None),
                       store.budget_report())
    if as_json:
        incidents = [{"id": i.id, "rule_id": i.rule_id, "entity": i.entity, "severity": i.severity,
                      "count": i.count, "first_seen": i.first_seen, "last_seen": i.last_seen, "summary": i.summary,
                      "entities": i.all_entities(),  # grouped: each rule of it, with its alerts' entities
                      "rules": {r: st.get("entities", [i.entity]) for r, st in i.rule_stats().items()}}
                     for i in opened]
        typer.echo(orjson.dumps({**report.to_dict(), "incidents": incidents,
                                 "model": result.model.summary() if result.model else None,
                                 "sources": [c.to_dict() for c in result.scorecards]}).decode())
        return
    for line in report.lines():
        typer.echo(line)
    if result.model is not None:
        typer.echo("\n" + result.model.summary())


@app.command("scorecard")
def show_scorecard(path: Annotated[Path, typer.Argument(help="a scorecard JSON file")],
                   scope: Annotated[str | None, typer.Option(help="that compliance scope's records only")] = None,
                   ) -> None:
    """Print a scorecard written by ``run --scorecard``."""
    from logwarden.app import print_scorecards
    from logwarden.standard import Scorecard

    cards = []
    for d in orjson.loads(path.read_bytes()):
        d.pop("compliance_rate", None)
        d["scopes"] = {name: [v["records"], v["compliant"]] for name, v in d.get("scopes", {}).items()}
        cards.append(Scorecard(**d))
    print_scorecards(cards, scope=scope)


@rules_app.command("validate")
def rules_validate(paths: Annotated[list[Path] | None, typer.Argument(help="rule files or folders (ours or "
                                                                         "Sigma)")] = None,
                   sigma_partial: Annotated[bool, typer.Option(
                       "--sigma-partial", help="exit 0 when the only problems are Sigma rules that do not "
                                               "convert")] = False) -> None:
    """Load the rule files and report every problem at once (file:line rule-id: message); Sigma
    rules that cannot be converted are listed with the reason (file: title: why)."""
    from logwarden.rules.loader import default_rule_files, load_rules

    settings = _env_settings()
    files = paths or list(settings.rules or []) or default_rule_files()
    rule_set = load_rules(files, settings.internal_networks, sigma_pipelines=settings.sigma_pipelines,
                          sigma_partial=True)
    for line in rule_set.not_loaded:
        typer.echo(f"not loaded: {line}")
    enabled = len(rule_set.enabled())
    sigma = f", {rule_set.sigma} from Sigma" if rule_set.sigma else ""
    typer.echo(f"ok: {len(rule_set.rules)} rules ({enabled} enabled{sigma}) in {len(rule_set.files)} file(s)")
    typer.echo(f"{len(rule_set.rules)} rules loaded, {len(rule_set.not_loaded)} not loaded")
    if rule_set.not_loaded and not (sigma_partial or settings.sigma_partial):
        raise typer.Exit(1)


@rules_app.command("convert")
def rules_convert(files: Annotated[list[Path], typer.Argument(help="Sigma rule files or folders")]) -> None:
    """Print the logwarden rules that Sigma rules become (YAML), to review and tune as your own;
    a rule that cannot be converted is a comment saying why. Exits 1 if any could not be."""
    import yaml

    from logwarden.rules.loader import rule_files
    from logwarden.rules.sigma import NotConverted, convert_texts

    settings = _env_settings()
    converted, failed = [], 0
    # together: a correlation may name a rule of another file
    for path, title, result in convert_texts([(p, p.read_text()) for p in rule_files(files)],
                                             settings.sigma_pipelines):
        if isinstance(result, NotConverted):
            failed += 1
            typer.echo(f"# not converted: {path}: {title}: {result}")
        else:
            converted.append(result)

    class Plain(yaml.SafeDumper):  # each rule written out in full, no &anchors
        def ignore_aliases(self, data: object) -> bool:
            return True

    if converted:
        typer.echo(yaml.dump({"rules": converted}, Dumper=Plain, sort_keys=False, allow_unicode=True, width=100))
    if failed:
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(paths: Annotated[list[Path] | None, typer.Argument(help="rule files")] = None) -> None:
    """Run every rule's examples through the real engine; each rule needs a positive and a
    negative example. Exits 1 on any failure."""
    from logwarden.rules.evaluate import run_examples
    from logwarden.rules.loader import default_rule_files, load_rules

    settings = _env_settings()
    rule_set = load_rules(paths or list(settings.rules or []) or default_rule_files(), settings.internal_networks,
                          sigma_pipelines=settings.sigma_pipelines, sigma_partial=settings.sigma_partial)
    results = run_examples(rule_set.rules, rule_set.examples)
    failed = 0
    for rule in rule_set.rules:
        mine = [r for r in results if r.rule_id == rule.meta.id]
        if not mine and any(t == "sigma" or t.startswith("sigma:") for t in rule.meta.tags):
            typer.echo(f"skip {rule.meta.id}: a Sigma rule carries no examples (`rules convert` it to add some)")
            continue
        for r in mine:
            failed += not r.ok
            typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {rule.meta.id} example {r.index + 1} "
                       f"(expect {r.expect}, got {r.alerts} alert(s))")
        if {r.expect for r in mine} != {"alert", "none"}:
            failed += 1
            typer.echo(f"FAIL {rule.meta.id}: needs at least one positive and one negative example")
    typer.echo(f"{sum(r.ok for r in results)} of {len(results)} examples passed")
    if failed:
        raise typer.Exit(1)


def _store():
    from logwarden.incidents.setup import build_store

    return build_store(_env_settings(), require_redis=True)


def _who(by: str | None) -> str:
    import getpass

    return by or getpass.getuser()


@incidents_app.command("list")
def incidents_list(state: Annotated[str | None, typer.Option(help="open | acknowledged | resolved")] = None,
                   rule: Annotated[str | None, typer.Option(help="rule id")] = None,
                   as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False) -> None:
    """List incidents, oldest first."""
    from logwarden.app import print_incidents

    store = _store()
    incidents = store.list(state=state, rule=rule)
    if as_json:
        for i in incidents:
            typer.echo(orjson.dumps(i.public()).decode())
        return
    if not incidents:
        typer.echo("no incidents")
        return

    print_incidents(incidents)


@incidents_app.command("show")
def incidents_show(incident_id: str) -> None:
    """One incident with its history, as JSON."""
    from logwarden.errors import LogwardenError as _E

    inc = _store().get(incident_id)
    if inc is None:
        raise _E(f"no incident {incident_id!r}")
    typer.echo(orjson.dumps(inc.public(), option=orjson.OPT_INDENT_2).decode())


ByOpt = Annotated[str | None, typer.Option(help="who (default: $USER)")]
NoteOpt = Annotated[str, typer.Option(help="why")]


def _transition(command: str, incident_id: str, by: str | None, note: str) -> None:
    store = _store()
    inc = (store.ack if command == "ack" else store.resolve)(incident_id, _who(by), note)
    _record("incident", {"command": command, "id": inc.id, "state": inc.state, "as": _who(by), "note": note})
    typer.echo(f"{inc.id} {inc.state}")


@incidents_app.command("ack")
def incidents_ack(incident_id: str, by: ByOpt = None, note: NoteOpt = "") -> None:
    """Acknowledge: stops re-notification, keeps counting."""
    _transition("ack", incident_id, by, note)


@incidents_app.command("resolve")
def incidents_resolve(incident_id: str, by: ByOpt = None, note: NoteOpt = "") -> None:
    """Resolve an incident; a new alert of the same fingerprint opens a new one."""
    _transition("resolve", incident_id, by, note)


@incidents_app.command("silence")
def incidents_silence(
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 2h, 1d")],
    reason: Annotated[str, typer.Option(help="why (recorded)")],
    rule: Annotated[str | None, typer.Option(help="silence this rule id")] = None,
    entity: Annotated[str | None, typer.Option(help="silence this principal")] = None,
    match: Annotated[str | None, typer.Option(help="glob over 'rule_id|entity'")] = None,
    by: Annotated[str | None, typer.Option(help="author (default: $USER)")] = None,
) -> None:
    """Silence notifications by rule, principal or pattern, for a while."""
    from logwarden.errors import LogwardenError as _E
    from logwarden.timeutil import parse_duration

    chosen = [(k, v) for k, v in (("rule", rule), ("entity", entity), ("match", match)) if v]
    if len(chosen) != 1:
        raise _E("give exactly one of --rule, --entity, --match")
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise _E(str(exc)) from None
    silence = _store().add_silence(chosen[0][0], chosen[0][1], length, _who(by), reason)
    _record("silence", {"command": "silence", **silence.public()})
    typer.echo(f"{silence.id} silences {silence.matcher}={silence.value} until {silence.public()['expires_at']}")


@incidents_app.command("silences")
def incidents_silences() -> None:
    """Active silences."""
    for s in _store().silences():
        d = s.public()
        typer.echo(f"{d['id']}  {d['matcher']}={d['value']}  until {d['expires_at']}  by {d['author']}: {d['reason']}")


@incidents_app.command("unsilence")
def incidents_unsilence(silence_id: str) -> None:
    """Remove a silence."""
    _store().remove_silence(silence_id)
    _record("silence", {"command": "unsilence", "id": silence_id})
    typer.echo(f"{silence_id} removed")


@incidents_app.command("apply")
def incidents_apply(path: Annotated[Path, typer.Argument(help="a file of waiting incident updates")]) -> None:
    """Apply incident updates that waited for Redis (the file a run names when Redis did not come
    back before it ended), then delete the file; applying one twice changes nothing."""
    from logwarden.errors import LogwardenError as _E
    from logwarden.incidents.waiting import read_updates

    try:
        alerts = read_updates(path)
    except OSError as exc:
        raise _E(f"{path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise _E(f"{path}: not a file of waiting incident updates ({exc})") from None
    changed = _store().apply(alerts)
    path.unlink()
    typer.echo(f"{len(alerts)} update(s) applied, {len(changed)} incident(s) changed")


@incidents_app.command("notify")
def incidents_notify(timeout: Annotated[float, typer.Option(help="seconds to keep trying")] = 60) -> None:
    """Deliver what is waiting in the outbox (after an outage or a crash), then exit."""
    from logwarden.errors import LogwardenError as _E
    from logwarden.incidents.dispatch import Dispatcher
    from logwarden.incidents.setup import build_notifier, dispatch_policy

    settings = _env_settings()
    notifier = build_notifier(settings)
    if notifier is None:
        raise _E("no notifier configured (LOGWARDEN_SLACK_TOKEN or LOGWARDEN_SLACK_WEBHOOK_URL)")
    store = _store()
    empty = Dispatcher(store, notifier, dispatch_policy(settings)).drain(timeout)
    left = len(store.outbox())
    typer.echo("outbox empty" if empty else f"{left} notification(s) still waiting")
    if not empty:
        raise typer.Exit(1)


@slack_app.command("serve")
def slack_serve(port: Annotated[int, typer.Option(help="port for Slack's requests (path /slack/events)")] = 3000,
                host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0") -> None:
    """Receive Slack's button clicks and the /logwarden command (needs LOGWARDEN_SLACK_SIGNING_SECRET,
    LOGWARDEN_SLACK_TOKEN and LOGWARDEN_REDIS_URL). Stops on Ctrl-C or SIGTERM."""
    import signal
    import threading

    import structlog
    from slack_sdk import WebClient

    from logwarden.errors import ConfigError
    from logwarden.incidents.dispatch import Dispatcher
    from logwarden.incidents.setup import build_notifier, dispatch_policy
    from logwarden.notify.slack_app import Responders, build_app, serve

    settings = _env_settings()
    if settings.slack_signing_secret is None:
        raise ConfigError("slack serve needs LOGWARDEN_SLACK_SIGNING_SECRET (the Slack app's signing secret)")
    if settings.slack_token is None:
        raise ConfigError("slack serve needs LOGWARDEN_SLACK_TOKEN (the app's bot token) to update messages")
    store = _store()
    notifier = build_notifier(settings)
    assert notifier is not None
    dispatcher = Dispatcher(store, notifier, dispatch_policy(settings))
    passing = threading.Lock()

    def deliver() -> None:
        with passing:  # one delivery pass at a time; leases keep it apart from the flow's
            try:
                dispatcher.run_once()
            except Exception as exc:  # the change is stored: the next pass delivers it
                structlog.get_logger("logwarden.slack").warning("dispatch_pass_failed", error=type(exc).__name__)

    def after_change() -> None:  # in the background: Slack wants its answer within 3 seconds
        threading.Thread(target=deliver, daemon=True).start()

    trail, writing = _audit_trail(), threading.Lock()

    def record(kind: str, data: dict) -> None:
        if trail is not None:
            with writing:  # Bolt runs listeners on several threads; the chain takes one record at a time
                trail.append([(kind, None, {"by": data["slack_user"]["name"] or data["slack_user"]["id"], **data})])

    client = WebClient(token=settings.slack_token.get_secret_value(),
                       timeout=int(max(settings.slack_timeout.total_seconds(), 1)),
                       **({"base_url": settings.slack_api_url.rstrip("/") + "/"} if settings.slack_api_url else {}))
    bolt = build_app(store, settings.slack_signing_secret.get_secret_value(), client,
                     Responders(settings.slack_responders, client), record, after_change)
    server = serve(bolt, host, port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    structlog.get_logger("logwarden.slack").info("slack_app_listening", host=host, port=server.server_port,
                                                 path="/slack/events")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _audit_trail():
    from logwarden.audit.setup import audit_key, cipher_of
    from logwarden.audit.trail import AuditTrail

    settings = _env_settings()
    if settings.audit_dir is None:
        return None
    return AuditTrail(settings.audit_dir, "decisions", audit_key(settings), cipher=cipher_of(settings))


def _record(kind: str, data: dict) -> None:
    """Record a command (who ran it, what it did) in the trail when one is configured."""
    from logwarden.audit.setup import who

    trail = _audit_trail()
    if trail is not None:
        trail.append([(kind, None, {"by": who(), **data})])


def _trail_dir(path: Path | None) -> Path:
    """The trail directory a command was given, else LOGWARDEN_AUDIT_DIR; a clear error without one."""
    from logwarden.errors import LogwardenError as _E

    root = path or _env_settings().audit_dir
    if root is None:
        raise _E("give the trail directory or set LOGWARDEN_AUDIT_DIR (and LOGWARDEN_AUDIT_KEY)")
    if not root.is_dir():
        raise _E(f"no audit trail at {root}")
    return root


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path | None, typer.Argument(help="trail directory (default: LOGWARDEN_AUDIT_DIR)")] = None,
) -> None:
    """Recompute every chain; say where it breaks. Exit 1 when it does."""
    from logwarden.audit.setup import audit_key
    from logwarden.audit.verify import verify

    settings = _env_settings()
    report = verify(_trail_dir(path), audit_key(settings))
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


def _query(start: str | None, end: str | None, classes: str | None = None, **filters: str | None):
    """The ``Query`` of ``--from/--to`` and the filters, or a clear error."""
    from logwarden.audit.search import Query
    from logwarden.audit.trail import CLASSES
    from logwarden.errors import LogwardenError as _E
    from logwarden.timeutil import parse_iso

    times = []
    for flag, value in (("--from", start), ("--to", end)):
        try:
            when = parse_iso(value) if value is not None else None
        except ValueError as exc:
            raise _E(f"{flag}: {exc}") from None
        if when is not None and when.tzinfo is None:
            raise _E(f"{flag} needs a timezone (e.g. 2026-03-01T00:00:00Z)")
        times.append(when)
    if classes is not None and classes not in CLASSES:
        raise _E(f"--class is one of {', '.join(CLASSES)}")
    return Query(times[0], times[1], classes=(classes,) if classes else CLASSES, **filters)


@audit_app.command("search")
def audit_search(
    start: Annotated[str | None, typer.Option("--from", help="from (ISO 8601, e.g. 2026-03-01T00:00:00Z)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="to (ISO 8601)")] = None,
    entity: EntityOpt = None, user: UserOpt = None, resource: ResourceOpt = None, source: SourceOpt = None,
    scope: ScopeOpt = None, action: ActionOpt = None, outcome: OutcomeOpt = None, rule: RuleOpt = None,
    cls: Annotated[str | None, typer.Option("--class", help="events or decisions (default: both)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    path: Annotated[Path | None, typer.Option(help="trail directory (default: LOGWARDEN_AUDIT_DIR)")] = None,
) -> None:
    """The trail's records a question asks for, skipping the segments whose seals rule them out;
    each says whether its segment verifies. Exit 1 when one does not."""
    from logwarden.audit.search import search
    from logwarden.audit.setup import audit_key, cipher_of

    settings = _env_settings()
    root = _trail_dir(path)
    filters = {"entity": entity, "user": user, "resource": resource, "source": source, "scope": scope,
               "action": action, "outcome": outcome, "rule": rule}
    result = search(root, _query(start, end, cls, **filters), audit_key(settings), cipher_of(settings))
    for hit in result.hits:
        if as_json:
            typer.echo(orjson.dumps(hit.to_dict()).decode())
        else:
            d = hit.data if isinstance(hit.data, dict) else {}
            who = d.get("user.name") or d.get("entity") or d.get("source.ip") or "-"
            what = d.get("event.action") or d.get("rule_id") or d.get("reason") or "-"
            where = d.get("resource") or d.get("log.file.path") or d.get("source") or "-"
            typer.echo(f"{hit.at}  {hit.cls[:9]:<9} {hit.kind:<10} {str(who)[:32]:<32} {str(what)[:28]:<28} "
                       f"{str(where)[:40]:<40} {'ok' if hit.verified else 'NOT VERIFIED'}")
    _record("access", {"command": "audit search", "from": start, "to": end, "class": cls, "records": len(result.hits),
                       **{k: v for k, v in filters.items() if v}})
    typer.echo(f"{len(result.hits)} record(s); {result.read} segment(s) read, {result.skipped} skipped by their "
               "seals", err=True)
    for problem in result.problems:
        typer.echo(f"NOT VERIFIED: {problem}", err=True)
    if result.problems:
        raise typer.Exit(1)


@app.command()
def evidence(
    start: Annotated[str, typer.Option("--from", help="period start (ISO 8601, e.g. 2026-11-01T00:00:00Z)")],
    end: Annotated[str, typer.Option("--to", help="period end (ISO 8601)")],
    out: Annotated[Path, typer.Option(help="a new directory, or a FILE.zip")],
    entity: EntityOpt = None, user: UserOpt = None, resource: ResourceOpt = None, source: SourceOpt = None,
    scope: ScopeOpt = None, action: ActionOpt = None, outcome: OutcomeOpt = None, rule: RuleOpt = None,
    cls: Annotated[str | None, typer.Option("--class", help="events or decisions (default: both)")] = None,
) -> None:
    """Export an evidence bundle an auditor can check with sha256sum and python3 alone."""
    from logwarden.audit.evidence import export
    from logwarden.audit.setup import audit_key, cipher_of, who
    from logwarden.errors import LogwardenError as _E

    settings = _env_settings()
    if settings.audit_dir is None:
        raise _E("evidence needs LOGWARDEN_AUDIT_DIR (and LOGWARDEN_AUDIT_KEY)")
    audit_key(settings)
    filters = {"entity": entity, "user": user, "resource": resource, "source": source, "scope": scope,
               "action": action, "outcome": outcome, "rule": rule}
    sel = _query(start, end, cls, **filters)
    incidents = []
    if settings.redis_url is not None:
        from logwarden.incidents.setup import build_store

        incidents = build_store(settings).list()
    from logwarden.app import default_model_path, load_rule_set

    rule_set = load_rule_set(settings)  # Sigma rules as the run loads them
    rule_files, version = list(rule_set.files), rule_set.version

    model = settings.model or default_model_path()
    if model is not None and settings.model_enabled:
        card = (model.with_suffix("") if model.suffix == ".skops" else model).with_suffix(".card.json")
        rule_files = [*rule_files, card]  # the model card in force travels with the rules
    path, count = export(settings.audit_dir, out, sel, who(), incidents, rule_files, version, cipher_of(settings))
    _record("access", {"command": "evidence", "from": start, "to": end, "class": cls, "out": str(path),
                       "records": count, **{k: v for k, v in filters.items() if v}})
    typer.echo(f"{count} record(s) exported to {path}; check it with: sha256sum -c MANIFEST.sha256 && "
               "python3 verify_chain.py .")


@app.command()
def report(
    start: Annotated[str, typer.Option("--from", help="period start (ISO 8601, e.g. 2026-11-01T00:00:00Z)")],
    end: Annotated[str, typer.Option("--to", help="period end (ISO 8601)")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    scope: ScopeOpt = None,
    path: Annotated[Path | None, typer.Option(help="trail directory (default: LOGWARDEN_AUDIT_DIR)")] = None,
) -> None:
    """One self-contained HTML report of a period from the audit trail, for an auditor or a
    security lead: compliance over time, violations, alerts and incidents, response times,
    rule coverage by control, model and budgets, the trail's verification. Prints well to PDF."""
    from logwarden.app import load_rule_set
    from logwarden.audit.setup import audit_key, cipher_of
    from logwarden.incidents.setup import noise_budget
    from logwarden.report import gather, render

    settings = _env_settings()
    root = _trail_dir(path)
    period = _query(start, end)
    if period.start is None or period.end is None or period.end <= period.start:
        raise LogwardenError("--to must come after --from")
    rule_set = load_rule_set(settings)
    data = gather(root, audit_key(settings), cipher_of(settings), period.start, period.end, scope,
                  rule_set.enabled(), noise_budget(settings, rule_set))
    out.write_text(render(data), encoding="utf-8")
    _record("access", {"command": "report", "from": start, "to": end, "scope": scope, "out": str(out)})
    typer.echo(f"report of {start} .. {end}{f' (scope {scope})' if scope else ''} written to {out}: "
               f"{len(data.alerts)} alert(s), {len(data.incidents)} incident(s), trail "
               f"{'verified' if data.verified else 'NOT VERIFIED'}")


@retention_app.command("apply")
def retention_apply(dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would go")] = False) -> None:
    """Delete whole expired segments (oldest first), keeping the chain verifiable; legal holds win."""
    from logwarden.audit.retention import run_retention
    from logwarden.audit.setup import who

    for line in run_retention(_env_settings(), who(), dry_run):
        typer.echo(line)


def _own_lateness(inputs: list[str], given: list[str]) -> dict[str, timedelta]:
    """``--input A --lateness 30s --input B --lateness 2m``: each input's own allowed lateness."""
    from logwarden.timeutil import parse_duration

    if not given:
        return {}
    if len(given) != len(inputs):
        raise LogwardenError(f"{len(given)} --lateness for {len(inputs)} --input: give one per --input, in the "
                             "same order, or set LOGWARDEN_SOURCE_LATENESS (per format or source glob)")
    try:
        return {text: parse_duration(value) for text, value in zip(inputs, given, strict=True)}
    except ValueError as exc:
        raise LogwardenError(f"--lateness: {exc}") from None


@app.command()
def status(url: Annotated[str, typer.Option(help="a running flow's metrics endpoint")] =
           "http://127.0.0.1:9464/metrics") -> None:
    """What a running flow reports (LOGWARDEN_METRICS_PORT): per source, violations, alerts, delivery."""
    import urllib.request

    from logwarden.errors import LogwardenError as _E
    from logwarden.metrics import parse_exposition
    from logwarden.timeutil import format_duration

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            values = parse_exposition(resp.read().decode())
    except OSError as exc:
        raise _E(f"no metrics at {url}: {type(exc).__name__} (is a flow running with LOGWARDEN_METRICS_PORT?)") \
            from None

    def labelled(name: str) -> list[tuple[dict[str, str], float]]:
        out = []
        for key, value in values.items():
            if key.startswith(name + "{"):
                labels = dict(part.split("=", 1) for part in key[len(name) + 1 : -1].split(","))
                out.append(({k: v.strip('"') for k, v in labels.items()}, value))
        return out

    typer.echo(f"{'source':<40} {'lines':>8} {'events':>8} {'compliant':>9} {'lag':>9} {'watermark':>10}")
    lag = {lab["source"]: v for lab, v in labelled("logwarden_lag_seconds")}
    comp = {lab["source"]: v for lab, v in labelled("logwarden_compliance_ratio")}
    events = {lab["source"]: v for lab, v in labelled("logwarden_events")}
    delay = {lab["source"]: v for lab, v in labelled("logwarden_watermark_delay_seconds")}
    bound = {lab["source"]: v for lab, v in labelled("logwarden_allowed_lateness_seconds")}
    for lab, lines in sorted(labelled("logwarden_lines"), key=lambda x: x[0]["source"]):
        src = lab["source"]
        # The watermark's delay behind the source's newest event (learned), and its allowed lateness.
        mark = (f"{format_duration(timedelta(seconds=delay[src]))}/{format_duration(timedelta(seconds=bound[src]))}"
                if src in delay and src in bound else "-")
        typer.echo(f"{src:<40} {lines:>8.0f} {events.get(src, 0):>8.0f} {comp.get(src, 0):>8.1%} "
                   f"{lag.get(src, 0):>8.0f}s {mark:>10}")
    for title, name, key in (("violations", "logwarden_violations_total", "reason"),
                             ("alerts", "logwarden_alerts_total", "rule"),
                             ("notifications", "logwarden_notifications_total", "outcome")):
        counts: dict[str, float] = {}
        for lab, v in labelled(name):
            counts[lab[key]] = counts.get(lab[key], 0) + v
        if counts:
            typer.echo(f"{title}: " + ", ".join(f"{k}={v:.0f}" for k, v in sorted(counts.items())))
    typer.echo(f"outbox: {values.get('logwarden_outbox', 0):.0f} waiting")
    outages = values.get("logwarden_redis_outages_total", 0.0)
    stuck = values.get("logwarden_redis_waiting_updates", 0.0)
    if stuck:
        typer.echo(f"redis: NOT ANSWERING: {stuck:.0f} incident update(s) waiting (applied in order when it is back)")
    elif outages:
        typer.echo(f"redis: answering; {outages:.0f} outage(s) during the run, nothing lost")
    model = {lab["state"]: v for lab, v in labelled("logwarden_model_principals")}
    if model:
        left = values.get("logwarden_model_warmup_remaining_seconds", 0.0)
        typer.echo(f"model: {model.get('scored', 0):.0f} principals scored, {model.get('learning', 0):.0f} learning; "
                   + (f"warm-up: {left / 3600:.1f}h of event time left (no model alert before)" if left > 0
                      else "warm-up done"))
    held = {lab["step"]: v for lab, v in labelled("logwarden_state_keys")}
    recovery = values.get("logwarden_recovery_bytes")
    typer.echo("state: " + ", ".join(f"{k}={v:.0f} keys" for k, v in sorted(held.items()))
               + (f"; recovery database {recovery / 1e6:.1f} MB" if recovery is not None else ""))


@app.command()
def train(
    inputs: InputOpt,
    model_out: Annotated[Path, typer.Option(help="where to write NAME.skops, NAME.card.json, NAME.baselines.json "
                                                 "and NAME.forest.npz")],
    alerts_per_day: Annotated[float, typer.Option(help="target false alarms a day on the baseline")] = 1.0,
    evaluate: Annotated[Path | None, typer.Option(help="a `logwarden simulate` directory of held-out days "
                                                       "with labels.jsonl: precision, recall, alerts a day")] = None,
    portable: Annotated[bool, typer.Option(help="keep no baselines of these principals: a model to ship to other "
                                                "organisations, whose principals then warm up first")] = False,
) -> None:
    """Fit the anomaly model on baseline logs (same parsers, standard and features as the flow).
    Without --portable the model carries this organisation's baselines and scores from the first event."""
    from logwarden.anomaly.train import train as fit
    from logwarden.app import model_gate, parser_options
    from logwarden.standard import load_profile

    settings = _env_settings()
    card = fit(inputs, parser_options(settings), load_profile(settings.standard_profile), model_out,
               settings.feature_window, alerts_per_day, evaluate, model_gate(settings), portable)
    t = card["training"]
    typer.echo(f"trained on {t['events']} events, {t['windows']} windows of {t['principals']} principals, "
               f"{t['scored_windows']} with a ready baseline ({t['from']} .. {t['to']}); "
               f"threshold {card['threshold']:.4f}; baselines: {card['baselines']}")
    if "evaluation" in card:
        e = card["evaluation"]
        typer.echo(f"held-out: recall {e['recall']}, precision {e['precision']}, {e['alerts_per_day']} alerts/day "
                   f"({e['false_alerts_per_day']} unexplained); anomalies caught: {e['anomalies']}")
    typer.echo(f"model card: {model_out.with_suffix('.card.json') if model_out.suffix != '.skops' else model_out}")


@app.command()
def selftest() -> None:
    """Push canaries through the real flow; pass/fail per control tag. Exit 1 on any failure."""
    from logwarden.audit.selftest import run_selftest

    rows = run_selftest(_env_settings())
    width = max(len(r.control) for r in rows)
    typer.echo(f"\n{'control':<{width}}  result  detail")
    for r in rows:
        typer.echo(f"{r.control:<{width}}  {'PASS' if r.ok else 'FAIL':<6}  {r.detail}")
    failed = sum(not r.ok for r in rows)
    typer.echo(f"\nselftest: {len(rows) - failed} of {len(rows)} controls pass")
    _record("selftest", {"passed": len(rows) - failed, "failed": failed,
                         "failures": [r.control for r in rows if not r.ok]})
    if failed:
        raise typer.Exit(1)


@app.command()
def check(
    inputs: InputOpt,
    fmt: FormatOpt = None,
    min_compliance: Annotated[float | None, typer.Option(help="required share of compliant lines (0-1)")] = None,
    standard: Annotated[Path | None, typer.Option(help="logging-standard profile (YAML)")] = None,
    violations: Annotated[Path | None, typer.Option(help="write violations here as JSON lines")] = None,
) -> None:
    """Only the logging-standard checks over sample logs; exit 1 when an input's compliance is below
    the threshold (for an application's CI: block a release whose logs break the standard)."""
    from logwarden.app import parser_options, print_scorecards, secret_rules
    from logwarden.parsers import build_parser
    from logwarden.sources import LineReader, resolve_inputs
    from logwarden.standard import SourceChecker, load_profile
    from logwarden.violation import Violation

    settings = _settings(standard_profile=standard)
    threshold = settings.check_min_compliance if min_compliance is None else min_compliance
    options = parser_options(settings)
    profile = load_profile(settings.standard_profile)
    cards = []
    out = violations.open("wb") if violations else None
    try:
        for path, f in resolve_inputs(inputs, fmt, options):
            checker = SourceChecker(profile, build_parser(f, options), path, secret_rules=secret_rules(settings),
                                    max_line=options.max_line)
            for chunk in LineReader(path, f, settings.batch_size).chunks():
                for item in checker.check_lines(chunk.lines, chunk.first_line):
                    if out is not None and isinstance(item, Violation):
                        out.write(orjson.dumps(item.to_dict()) + b"\n")
            cards.append(checker.scorecard)
    finally:
        if out is not None:
            out.close()
    print_scorecards(cards)
    failing = [c for c in cards if c.compliance_rate < threshold]
    for c in failing:
        typer.echo(f"FAIL {c.source}: compliance {c.compliance_rate:.2%} < {threshold:.2%}", err=True)
    if failing:
        raise typer.Exit(1)
    typer.echo(f"ok: every input at or above {threshold:.2%} compliance")


def main() -> None:
    """Expected failures (a bad setting or file, Redis or a disk out of reach) are one line naming
    the thing; ``--debug`` adds the traceback. Anything else is a bug and keeps its traceback."""
    import redis

    try:
        app()
    except (LogwardenError, OSError, redis.RedisError) as exc:
        if _DEBUG["on"]:
            traceback.print_exc()
        what = str(exc) if isinstance(exc, LogwardenError) else \
            f"{type(exc).__name__}: {exc}" + (" (is Redis reachable at LOGWARDEN_REDIS_URL?)"
                                              if isinstance(exc, redis.RedisError) else "")
        typer.echo(f"logwarden: error: {what}" + ("" if _DEBUG["on"] else " (--debug shows the traceback)"), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""The ``logwarden`` command line."""

from __future__ import annotations

import sys
import tempfile
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
RulesOpt = Annotated[list[Path] | None,
                     typer.Option("--rules", help="rule file (repeatable; default: the shipped pack)")]

InputOpt = Annotated[list[str], typer.Option("--input", "-i", help="log file, or - for stdin (repeatable)")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="override format detection")]


def _settings(**overrides: object):
    from logwarden.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LogwardenError(f"invalid settings: {problems}") from None


def _print_alert(alert) -> None:
    prefix = "ALERT " if alert.revision == 0 else "update"
    typer.echo(f"{prefix} {alert.one_line()}")


@app.command()
def run(
    inputs: InputOpt,
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
) -> None:
    """Read inputs through the standard and the rules; exit once finite inputs are consumed."""
    from logwarden.app import print_incidents, print_scorecards, run_flow

    settings = _settings(workers=workers, standard_profile=standard, json_mapping=mapping,
                         syslog_year=syslog_year, rules=rules or None)
    result = run_flow(settings, inputs, fmt, alerts_path=alerts, violations_path=violations,
                      follow=follow, on_alert=_print_alert)
    print_scorecards(result.scorecards)
    if result.store is not None:
        print_incidents(result.store)
    if result.undelivered:
        typer.echo(f"warning: {result.undelivered} incident notification(s) not delivered yet; they stay in "
                   "the outbox (logwarden incidents notify)", err=True)
    if scorecard is not None:
        _write_scorecard(scorecard, result.scorecards)


def _write_scorecard(path: Path, cards) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps([c.to_dict() for c in cards], option=orjson.OPT_INDENT_2))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="directory to write the logs and labels.jsonl into")],
    days: Annotated[int, typer.Option(min=1, max=60, help="days of activity")] = 1,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same logs)")] = 7,
) -> None:
    """Write realistic multi-format logs of a small organisation, with planted attacks,
    non-compliant lines and a labels file."""
    from logwarden.simulate import simulate as make

    written = make(out, days=days, seed=seed)
    for path, lines in written.items():
        typer.echo(f"{lines:>8}  {path}")


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="keep the simulated logs and outputs here")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w")] = 1,
) -> None:
    """Simulate a day of an organisation's logs and run the flow on them (no Redis, no Slack)."""
    from logwarden.app import print_incidents, print_scorecards, run_flow
    from logwarden.simulate import simulate as make

    base = out or Path(tempfile.mkdtemp(prefix="logwarden-demo-"))
    logs = base / "logs"
    written = make(logs, days=1, seed=7)
    inputs = sorted(str(p) for p in written if not str(p).endswith("labels.jsonl"))
    typer.echo(f"simulated {sum(written.values())} lines into {logs}")
    settings = _settings(workers=workers)
    result = run_flow(settings, inputs, None, alerts_path=base / "alerts.jsonl",
                      violations_path=base / "violations.jsonl", on_alert=_print_alert)
    print_scorecards(result.scorecards)
    if result.store is not None:
        print_incidents(result.store)
    fired = {a.alert_id for a in result.alerts}
    where = "in Redis" if settings.redis_url else "in memory"
    typer.echo(f"\n{len(fired)} alert(s), {len(result.store.list()) if result.store else 0} incident(s) "
               f"{where}; outputs in {base} (alerts.jsonl, violations.jsonl)")


@app.command("scorecard")
def show_scorecard(path: Annotated[Path, typer.Argument(help="a scorecard JSON file")]) -> None:
    """Print a scorecard written by ``run --scorecard``."""
    from logwarden.app import print_scorecards
    from logwarden.standard import Scorecard

    cards = []
    for d in orjson.loads(path.read_bytes()):
        d.pop("compliance_rate", None)
        cards.append(Scorecard(**d))
    print_scorecards(cards)


@rules_app.command("validate")
def rules_validate(paths: Annotated[list[Path] | None, typer.Argument(help="rule files")] = None) -> None:
    """Load the rule files and report every problem at once (file:line rule-id: message)."""
    from logwarden.rules.loader import default_rule_files, load_rules

    files = paths or default_rule_files()
    rule_set = load_rules(files)
    enabled = len(rule_set.enabled())
    typer.echo(f"ok: {len(rule_set.rules)} rules ({enabled} enabled) in {', '.join(map(str, files))}")


@rules_app.command("test")
def rules_test(paths: Annotated[list[Path] | None, typer.Argument(help="rule files")] = None) -> None:
    """Run every rule's examples through the real engine; each rule needs a positive and a
    negative example. Exits 1 on any failure."""
    from logwarden.rules.evaluate import run_examples
    from logwarden.rules.loader import default_rule_files, load_rules

    rule_set = load_rules(paths or default_rule_files())
    results = run_examples(rule_set.rules, rule_set.examples)
    failed = 0
    for rule in rule_set.rules:
        mine = [r for r in results if r.rule_id == rule.meta.id]
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

    return build_store(_settings(), require_redis=True)


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

    class _Only:  # print_incidents takes a store; show the filtered list
        @staticmethod
        def list():
            return incidents

    print_incidents(_Only())  # type: ignore[arg-type]


@incidents_app.command("show")
def incidents_show(incident_id: str) -> None:
    """One incident with its history, as JSON."""
    from logwarden.errors import LogwardenError as _E

    inc = _store().get(incident_id)
    if inc is None:
        raise _E(f"no incident {incident_id!r}")
    typer.echo(orjson.dumps(inc.public(), option=orjson.OPT_INDENT_2).decode())


@incidents_app.command("ack")
def incidents_ack(incident_id: str, by: Annotated[str | None, typer.Option(help="who (default: $USER)")] = None,
                  note: Annotated[str, typer.Option(help="why")] = "") -> None:
    """Acknowledge: stops re-notification, keeps counting."""
    inc = _store().ack(incident_id, _who(by), note)
    typer.echo(f"{inc.id} {inc.state}")


@incidents_app.command("resolve")
def incidents_resolve(incident_id: str, by: Annotated[str | None, typer.Option(help="who (default: $USER)")] = None,
                      note: Annotated[str, typer.Option(help="why")] = "") -> None:
    """Resolve an incident; a new alert of the same fingerprint opens a new one."""
    inc = _store().resolve(incident_id, _who(by), note)
    typer.echo(f"{inc.id} {inc.state}")


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
    typer.echo(f"{silence_id} removed")


@incidents_app.command("notify")
def incidents_notify(timeout: Annotated[float, typer.Option(help="seconds to keep trying")] = 60) -> None:
    """Deliver what is waiting in the outbox (after an outage or a crash), then exit."""
    from logwarden.errors import LogwardenError as _E
    from logwarden.incidents.dispatch import Dispatcher
    from logwarden.incidents.setup import build_notifier, dispatch_policy

    settings = _settings()
    notifier = build_notifier(settings)
    if notifier is None:
        raise _E("no notifier configured (LOGWARDEN_SLACK_TOKEN or LOGWARDEN_SLACK_WEBHOOK_URL)")
    store = _store()
    empty = Dispatcher(store, notifier, dispatch_policy(settings)).drain(timeout)
    left = len(store.outbox())
    typer.echo("outbox empty" if empty else f"{left} notification(s) still waiting")
    if not empty:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except LogwardenError as exc:
        typer.echo(f"logwarden: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

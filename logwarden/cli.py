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
    from logwarden.app import print_scorecards, run_flow

    settings = _settings(workers=workers, standard_profile=standard, json_mapping=mapping,
                         syslog_year=syslog_year, rules=rules or None)
    result = run_flow(settings, inputs, fmt, alerts_path=alerts, violations_path=violations,
                      follow=follow, on_alert=_print_alert)
    print_scorecards(result.scorecards)
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
    from logwarden.app import print_scorecards, run_flow
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
    fired = {a.alert_id for a in result.alerts}
    typer.echo(f"\n{len(fired)} alert(s); outputs in {base} (alerts.jsonl, violations.jsonl)")


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


def main() -> None:
    try:
        app()
    except LogwardenError as exc:
        typer.echo(f"logwarden: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

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
) -> None:
    """Read inputs through the standard and the rules; exit once finite inputs are consumed."""
    from logwarden.app import print_scorecards, run_flow

    settings = _settings(workers=workers, standard_profile=standard, json_mapping=mapping,
                         syslog_year=syslog_year)
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


def main() -> None:
    try:
        app()
    except LogwardenError as exc:
        typer.echo(f"logwarden: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

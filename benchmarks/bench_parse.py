"""Throughput of parse + logging-standard check + violation output, on one core.

Prints, from one run over the same lines: a plain ``json.loads`` loop (the reference), our
parse + check over those JSON lines, our parse + check over mixed JSON/combined/syslog lines,
and the whole Bytewax flow (1 worker) over the mixed files with violations written to disk.

    python benchmarks/bench_parse.py [--lines 300000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from logwarden.parsers import ParserOptions, build_parser
from logwarden.simulate import simulate
from logwarden.standard import SourceChecker, load_profile


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} lines/s"


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=300_000, help="lines per format (about)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    sim = work / "sim"
    simulate(sim, days=1, seed=1, end=datetime(2026, 11, 25, tzinfo=UTC))
    per_format = {"json": "app/api.jsonl", "combined": "web/access.log", "syslog": "auth/auth.log"}
    files: dict[str, list[str]] = {}
    for fmt, rel in per_format.items():
        base = (sim / rel).read_text().splitlines()
        files[fmt] = (base * (args.lines // len(base) + 1))[: args.lines]
    profile, options = load_profile(), ParserOptions()

    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    json_lines = files["json"]
    def plain() -> None:
        for line in json_lines:
            try:
                json.loads(line)
            except ValueError:  # the planted malformed lines
                pass

    t = best_of(3, plain)
    print(f"json.loads loop over {len(json_lines):,} JSON lines     {rate(len(json_lines), t)}")

    def check(fmt: str, lines: list[str]) -> None:
        checker = SourceChecker(profile, build_parser(fmt, options), fmt)
        for _ in checker.check_lines(lines, 1):
            pass

    t = best_of(3, lambda: check("json", json_lines))
    print(f"parse+check over the same JSON lines      {rate(len(json_lines), t)}")
    quiet = profile.model_copy(update={"alerts": profile.alerts.model_copy(update={"enabled": False})})

    def check_quiet() -> None:  # the standard's own alerts off: what their bookkeeping costs
        for _ in SourceChecker(quiet, build_parser("json", options), "json").check_lines(json_lines, 1):
            pass

    t = best_of(3, check_quiet)
    print(f"  the same, the standard's alerts off      {rate(len(json_lines), t)}")
    total = sum(map(len, files.values()))
    t = best_of(3, lambda: [check(fmt, lines) for fmt, lines in files.items()])
    print(f"parse+check over {total:,} mixed lines      {rate(total, t)}")

    # The whole flow: Bytewax, one worker, violations to a file.
    from bytewax.testing import run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.sinks import JsonLinesSink
    from logwarden.sources.bytewax.files import LogFileSource

    inputs = []
    for fmt, lines in files.items():
        path = work / f"mixed.{fmt}"
        path.write_text("\n".join(lines) + "\n")
        inputs.append((str(path), fmt))
    config = FlowConfig(profile=profile, parser_options=options,
                        rules=load_rules(default_rule_files()).enabled())

    def flow() -> None:
        out = work / "violations.jsonl"
        out.unlink(missing_ok=True)
        run_main(build_flow(config, LogFileSource(inputs, 1000),
                            Sinks(alerts=[JsonLinesSink(work / "alerts.jsonl")],
                                  violations=[JsonLinesSink(out)], scorecards=[])))

    t = best_of(2, flow)
    print(f"whole flow (Bytewax, 1 worker), mixed     {rate(total, t)}")


if __name__ == "__main__":
    main()

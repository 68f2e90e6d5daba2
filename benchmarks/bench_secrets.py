"""What the secret rules cost: the redactor alone per format, and the whole flow, each beside the
pattern set logwarden used before gitleaks' rules (``_previous_secrets.py``: ten formats, one
combined Python ``re`` trigger per line) in the same run.

    python benchmarks/bench_secrets.py [--days 2]

The redactor: gitleaks' 222 rules (google-re2) and our structural detectors behind one
Aho-Corasick keyword pass per batch (ahocorasick_rs). Lines: one simulated organisation (all six
formats) and the real logs in ../shared/data/real when they are beside the checkout.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _previous_secrets as previous
from bench_parse import best_of

from logwarden import secrets
from logwarden.simulate import simulate

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


class Previous:
    """The old pattern set behind the new redactor's interface."""

    def redact(self, line: str) -> previous.Redaction | None:
        return previous.redact(line)

    def redact_batch(self, lines: Sequence[str]) -> list[previous.Redaction | None]:
        return [previous.redact(line) for line in lines]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=2, help="simulated days (about 20k lines a day)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lw-bench-secrets-"))
    sim = work / "sim"
    simulate(sim, days=args.days, seed=1, end=datetime(2026, 11, 25, tzinfo=UTC))
    files = {str(p.relative_to(sim)): p for p in sorted(sim.rglob("*"))
             if p.is_file() and p.name != "labels.jsonl"}
    if REAL.exists():
        files |= {f"real/{p.relative_to(REAL)}": p for p in sorted(REAL.rglob("*"))
                  if p.suffix in (".log", ".json", ".csv")}
    new, old = secrets.default_redactor(), Previous()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{'file':<62} {'lines':>7} {'new µs/line':>12} {'previous':>9}")
    totals = [0, 0.0, 0.0]
    for name, path in files.items():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        batches = [lines[k:k + 1000] for k in range(0, len(lines), 1000)]
        t_new = best_of(3, lambda b=batches: [new.redact_batch(x) for x in b])
        t_old = best_of(3, lambda b=batches: [old.redact_batch(x) for x in b])
        print(f"{name:<62} {len(lines):>7} {t_new / len(lines) * 1e6:>12.2f} {t_old / len(lines) * 1e6:>9.2f}")
        if not name.startswith("real/"):
            totals[0] += len(lines)
            totals[1] += t_new
            totals[2] += t_old
    n = totals[0]
    name = "simulated organisation, all formats"
    print(f"{name:<62} {n:>7} {totals[1] / n * 1e6:>12.2f} {totals[2] / n * 1e6:>9.2f}")

    # The whole flow (Bytewax, one worker, the default pack, no model), same lines, each redactor.
    from bytewax.testing import run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.parsers import ParserOptions
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.sinks import JsonLinesSink
    from logwarden.sources import resolve_inputs
    from logwarden.sources.bytewax.files import LogFileSource
    from logwarden.standard import load_profile

    options = ParserOptions()
    inputs = resolve_inputs([str(p) for name, p in files.items() if not name.startswith("real/")], None, options)
    config = FlowConfig(profile=load_profile(), parser_options=options,
                        rules=load_rules(default_rule_files()).enabled())

    def flow() -> None:
        out = work / "violations.jsonl"
        out.unlink(missing_ok=True)
        run_main(build_flow(config, LogFileSource(inputs, 1000), Sinks(
            alerts=[JsonLinesSink(work / "alerts.jsonl")], violations=[JsonLinesSink(out)], scorecards=[])))

    real_for = secrets.redactor_for
    rates = {}
    for label, redactor in (("previous pattern set", old), ("gitleaks rules + structural", new),
                            ("previous pattern set (again)", old), ("gitleaks rules + structural (again)", new)):
        secrets.redactor_for = lambda paths=(), r=redactor: r  # type: ignore[assignment,misc]
        try:
            rates[label] = n / best_of(2, flow)
        finally:
            secrets.redactor_for = real_for
        print(f"whole flow, {label:<36} {rates[label]:>10,.0f} lines/s")
    before = max(rates["previous pattern set"], rates["previous pattern set (again)"])
    after = max(rates["gitleaks rules + structural"], rates["gitleaks rules + structural (again)"])
    print(f"whole flow: {after / before - 1:+.1%} with the gitleaks rules")


if __name__ == "__main__":
    main()

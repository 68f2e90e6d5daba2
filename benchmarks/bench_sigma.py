"""What the SigmaHQ rules cost: ``logwarden run`` over the simulator's day with the default pack,
then with the default pack and every Sigma rule of ``../shared/data/sigma`` (``--sigma-partial``:
the ones that convert), end to end (start-up, loading and converting the rules, the run).

    python benchmarks/bench_sigma.py [--days 1] [--repeat 5] [--sigma DIR]

Each configuration runs ``--repeat`` times, alternating, and the median wall time is reported,
with the rule-loading time alone (``load_rules`` in this process) for each. The runs share a new
cache directory (``LOGWARDEN_CACHE_DIR``): the first Sigma run converts the rules (reported
apart, "cold"), later ones read the conversions back, as every run after the first does. The
issue's bound: the Sigma rules add less than 10% to the default pack's run time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each configuration (at least 2)")
    ap.add_argument("--sigma", type=Path, default=ROOT.parent / "shared" / "data" / "sigma")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.simulate import simulate

    default = default_rule_files()
    t = time.perf_counter()
    pack = load_rules(default)
    load_default = time.perf_counter() - t
    t = time.perf_counter()
    both = load_rules([*default, args.sigma], sigma_partial=True)
    load_both = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp), days=args.days, seed=7, end=datetime(2026, 11, 25, tzinfo=UTC))
        inputs = [x for p in sorted(Path(tmp).rglob("*.*")) if p.name != "labels.jsonl" for x in ("-i", str(p))]
        lines = sum(1 for i in range(1, len(inputs), 2) for _ in open(inputs[i], encoding="utf-8", errors="replace"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
        env["LOGWARDEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # imports from .pyc, as an installed logwarden does
        configs = {"default pack": ["--rules", str(default[0])],
                   "default pack + Sigma": ["--rules", str(default[0]), "--rules", str(args.sigma), "--sigma-partial"]}
        times: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.repeat):
            for name, extra in configs.items():
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "logwarden", "run", *inputs, *extra,
                                "--alerts", str(Path(tmp) / "alerts.jsonl")], cwd=ROOT, env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t)
    cold = times["default pack + Sigma"].pop(0)  # the run that converted the rules
    base = statistics.median(times["default pack"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"input: the simulator's {args.days} day(s), {lines:,} lines; {args.repeat} runs each, median")
    print(f"{'rules':<24} {'rules':>6} {'load s*':>8} {'run s':>8} {'vs default':>11}")
    for name, rule_set, load in (("default pack", pack, load_default), ("default pack + Sigma", both, load_both)):
        med = statistics.median(times[name])
        print(f"{name:<24} {len(rule_set.rules):>6} {load:>8.2f} {med:>8.2f} {100 * (med / base - 1):>+10.1f}%")
    print(f"first Sigma run (converting, cold cache): {cold:.2f} s, {100 * (cold / base - 1):+.1f}%")
    print("* load_rules in this process, converting (no cache)")
    print(f"Sigma rules: {both.sigma} loaded, {len(both.not_loaded)} not loaded")


if __name__ == "__main__":
    main()

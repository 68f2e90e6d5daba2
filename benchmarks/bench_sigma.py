"""What the SigmaHQ rules cost: ``logwarden run`` over the simulator's day with the default pack,
then with the default pack and every Sigma rule of ``../shared/data/sigma`` (``--sigma-partial``:
the ones that convert), end to end (start-up, loading and converting the rules, the run).

    python benchmarks/bench_sigma.py [--days 1] [--repeat 5] [--sigma DIR]

One untimed run of each configuration first (Python writes its bytecode for pySigma's modules
then, as ``pip install`` does at install time). Then, alternating, ``--repeat`` timed runs of:
the default pack; the default pack and Sigma converting every time (no cache:
``LOGWARDEN_CACHE_DIR=``); and the default pack and Sigma with the conversions cached (as every
run after the first). Medians, and the fastest run of each (this machine is a shared VM: other
tenants only ever add time, so the fastest run is the steadiest figure). The issue's bound: the
Sigma rules add less than 10% to the default pack's run time.
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
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # imports from .pyc, as an installed logwarden does
        sigma = ["--rules", str(default[0]), "--rules", str(args.sigma), "--sigma-partial"]
        configs = {"default pack": (["--rules", str(default[0])], ""),
                   "+ Sigma, converting": (sigma, ""),
                   "+ Sigma, cached": (sigma, str(Path(tmp) / "cache"))}
        times: dict[str, list[float]] = {name: [] for name in configs}
        for n in range(args.repeat + 1):
            for name, (extra, cache) in configs.items():
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "logwarden", "run", *inputs, *extra,
                                "--alerts", str(Path(tmp) / "alerts.jsonl")], cwd=ROOT,
                               env=env | {"LOGWARDEN_CACHE_DIR": cache}, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if n:  # the first round warms up
                    times[name].append(time.perf_counter() - t)
    base = statistics.median(times["default pack"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"input: the simulator's {args.days} day(s), {lines:,} lines; {args.repeat} runs each, median")
    best = min(times["default pack"])
    print(f"{'rules':<22} {'rules':>6} {'median s':>9} {'vs default':>11} {'fastest s':>10} {'vs default':>11}")
    for name, rule_set in (("default pack", pack), ("+ Sigma, converting", both), ("+ Sigma, cached", both)):
        med, low = statistics.median(times[name]), min(times[name])
        print(f"{name:<22} {len(rule_set.rules):>6} {med:>9.2f} {100 * (med / base - 1):>+10.1f}% "
              f"{low:>10.2f} {100 * (low / best - 1):>+10.1f}%")
    print(f"load_rules in this process: default {load_default:.2f} s, with Sigma converting {load_both:.2f} s")
    print(f"Sigma rules: {both.sigma} loaded, {len(both.not_loaded)} not loaded")


if __name__ == "__main__":
    main()

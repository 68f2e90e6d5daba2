"""The long fuzzing run: ``python -m tests.fuzz.campaign [--lines 1000000] [--seed 1]``.

Prints how the lines ended, the slowest line, and every broken invariant (exit 1 when any);
the README gives the last result. ``tests/test_fuzz.py`` runs a short campaign in CI.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.fuzz.harness import LINE_SECONDS, campaign


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    start = time.perf_counter()
    found = campaign(args.lines, args.seed)
    seconds = time.perf_counter() - start
    print(f"{found.lines:,} lines (seed {args.seed}) in {seconds:,.0f} s; longest {found.longest:,} characters")
    print("ended as: " + ", ".join(f"{k} {v:,}" for k, v in found.outcomes.most_common()))
    print(f"slowest line: {found.slowest:.3f} s ({found.slowest_length:,} characters; the bound is {LINE_SECONDS} s)")
    print(f"broken invariants: {len(found.failures)}")
    for failure in found.failures[:50]:
        print("  " + failure[:400])
    sys.exit(1 if found.failures else 0)


if __name__ == "__main__":
    main()

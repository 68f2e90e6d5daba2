"""Scoring feature vectors: the vectorized scorer beside scikit-learn's ``score_samples`` on the
same fitted forest, in the same run.

    python benchmarks/bench_model.py [--rows 100000] [--batch 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import IsolationForest

from logwarden.anomaly.features import FEATURES
from logwarden.anomaly.model import VectorizedForest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, len(FEATURES)))
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=1).fit(train)
    scorer = VectorizedForest(forest)
    X = rng.normal(size=(args.rows, len(FEATURES))) * 1.5
    t = time.perf_counter()
    for i in range(0, args.rows, args.batch):
        scorer.score(X[i : i + args.batch])
    vec = args.rows / (time.perf_counter() - t)
    one = X[:1]
    t = time.perf_counter()
    for _ in range(20):
        forest.score_samples(one)
    single = 20 / (time.perf_counter() - t)
    t = time.perf_counter()
    n = min(20 * args.batch, args.rows)
    for i in range(0, n, args.batch):
        forest.score_samples(X[i : i + args.batch])
    batched = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(200):
        scorer.score(one)
    vec_single = 200 / (time.perf_counter() - t)
    diff = np.max(np.abs(scorer.score(X[:4096]) + forest.score_samples(X[:4096])))
    print(f"forest: 100 trees, max_samples 256, {len(FEATURES)} features; max |difference| {diff:.1e}")
    print(f"score_samples, one row at a time      {single:>12,.0f} rows/s")
    print(f"score_samples, batches of {args.batch}       {batched:>12,.0f} rows/s")
    print(f"vectorized scorer, one row at a time  {vec_single:>12,.0f} rows/s")
    print(f"vectorized scorer, batches of {args.batch}   {vec:>12,.0f} rows/s")


if __name__ == "__main__":
    main()

"""Behavioural anomaly detection: per-principal windowed features scored by an IsolationForest."""

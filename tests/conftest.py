from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from logwarden.parsers import ParserOptions

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def options() -> ParserOptions:
    return ParserOptions(now=NOW)


def real_file(rel: str) -> Path:
    path = REAL / rel
    if not path.exists():
        pytest.skip(f"real sample {rel} not present (needs ../shared/data/real)")
    return path


SIM_END = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated day (seed 3) with planted attacks, anomalies and violations, shared by tests
    that only read it."""
    from logwarden.simulate import simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(out, days=1, seed=3, end=SIM_END)
    return out


def sim_inputs(sim: Path) -> list[str]:
    """The simulated day's log files (not its labels), in a stable order."""
    return sorted(str(p) for p in sim.rglob("*.*") if p.name != "labels.jsonl")

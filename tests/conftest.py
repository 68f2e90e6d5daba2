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

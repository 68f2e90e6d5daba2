"""What every parser is: a small class built from ``ParserOptions`` with ``sniff`` and ``parse``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import orjson

from logwarden.errors import ParseError
from logwarden.event import Event

MAX_LINE = 64 * 1024  # characters


@dataclass(frozen=True, slots=True)
class ParserOptions:
    """Configuration every parser may read; built once from settings."""

    syslog_year: int | None = None  # None: the year that puts the event closest before now
    now: datetime | None = None  # reference for syslog year inference; None: wall clock
    json_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Longer lines are never parsed nor sniffed (a too_long violation): no line can stall the
    # monitor, whatever a parser's patterns.
    max_line: int = MAX_LINE


class Parser(Protocol):
    name: ClassVar[str]

    def __init__(self, options: ParserOptions) -> None: ...

    def sniff(self, line: str) -> bool:
        """True when the line looks like this format (used for auto-detection)."""
        ...

    def parse(self, line: str, source: str, lineno: int) -> Event:
        """One event from one line; raises ``ParseError`` (never anything else)."""
        ...


def load_json_object(line: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(doc, dict):
        raise ParseError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def as_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def as_int(value: Any) -> int | None:
    if value is None or value == "" or value == "-" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None


def outcome_from_status(code: int | None) -> str | None:
    if code is None:
        return None
    if 200 <= code < 400:
        return "success"
    if code >= 400:
        return "failure"
    return "unknown"

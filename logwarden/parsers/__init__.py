"""Parser registry and per-input format detection.

A new parser is one file in this package plus one line in ``PARSERS``. Order matters for
detection ties: the more specific formats come first.
"""

from __future__ import annotations

from logwarden.errors import ConfigError, LogwardenError, ParseError
from logwarden.event import Event
from logwarden.parsers.base import Parser, ParserOptions
from logwarden.parsers.cloudtrail import CloudTrail
from logwarden.parsers.combined import CombinedLog
from logwarden.parsers.jsonl import JsonLines
from logwarden.parsers.k8s_audit import K8sAudit
from logwarden.parsers.logfmt import Logfmt
from logwarden.parsers.syslog import SyslogAuth

PARSERS: dict[str, type[Parser]] = {
    "cloudtrail": CloudTrail,
    "k8s_audit": K8sAudit,
    "json": JsonLines,
    "combined": CombinedLog,
    "syslog": SyslogAuth,
    "logfmt": Logfmt,
}

SNIFF_LINES = 20
UNDETECTED = "undetected"  # a followed file or stream whose format nothing recognised


class Undetected:
    """Every line of an input whose format could not be detected is a ``malformed`` violation
    (kept, counted, reported by the standard's ``unknown-source`` alert), not a crashed flow."""

    name = UNDETECTED

    def __init__(self, options: ParserOptions) -> None:
        self.options = options

    def sniff(self, line: str) -> bool:
        return False

    def parse(self, line: str, source: str, lineno: int) -> Event:
        raise ParseError("its format could not be detected (pass --format)")


def build_parser(fmt: str, options: ParserOptions) -> Parser:
    if fmt == UNDETECTED:
        return Undetected(options)  # type: ignore[return-value]
    try:
        cls = PARSERS[fmt]
    except KeyError:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(PARSERS)}") from None
    return cls(options)


def detect_format(lines: list[str], options: ParserOptions) -> str | None:
    """The format that parses most of the first non-empty lines; None when none parses any."""
    sample = [line for line in lines if line.strip() and len(line) <= options.max_line][:SNIFF_LINES]
    best, best_hits = None, 0
    for name, cls in PARSERS.items():
        parser = cls(options)
        many = getattr(parser, "parse_many", None)  # lines that may hold several records
        hits = 0
        for line in sample:
            if not parser.sniff(line):
                continue
            try:
                items = many(line, "<sniff>", 0) if many is not None else None
                if items is None:
                    parser.parse(line, "<sniff>", 0)
                elif not any(isinstance(item, Event) for item, _ in items):
                    continue
            except LogwardenError:
                continue
            hits += 1
        if hits > best_hits:
            best, best_hits = name, hits
    return best


__all__ = ["PARSERS", "UNDETECTED", "Parser", "ParserOptions", "build_parser", "detect_format"]

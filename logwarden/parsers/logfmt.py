"""logfmt / key=value lines (``ts=... level=info user=bob action=login status=failed``)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from logwarden.errors import ParseError
from logwarden.event import Event
from logwarden.parsers.base import ParserOptions
from logwarden.parsers.mapping import AliasIndex, columns_from_mappings, event_from_mapping, merge_aliases
from logwarden.rows import ParsedColumns

# A key starts only where no key character precedes it, and nothing is given back once matched
# (possessive quantifiers): linear in the line's length. Without both, a long run of word
# characters with no "=" (a request path, a user agent) cost quadratic time on every sniffed line.
_PAIR = re.compile(r'(?<![\w.@/-])([A-Za-z_@][\w.@/-]*+)=("(?:[^"\\]|\\.)*+"|[^\s"]*+)')


class Logfmt:
    name: ClassVar[str] = "logfmt"

    def __init__(self, options: ParserOptions) -> None:
        self._aliases = AliasIndex(merge_aliases(options.json_aliases))

    def sniff(self, line: str) -> bool:
        return len(_PAIR.findall(line)) >= 3 and not line.startswith("{")

    def parse(self, line: str, source: str, lineno: int) -> Event:
        doc = _pairs(line)
        if len(doc) < 2:
            raise ParseError("not a logfmt line (fewer than two key=value pairs)")
        return event_from_mapping(doc, self._aliases, source, lineno, self.name)

    def parse_columns(self, lines: list[str], source: str, first_lineno: int) -> ParsedColumns:
        """``parse`` of consecutive lines as columns (``logwarden.rows``); a line with fewer than
        two pairs is left to ``parse``."""
        docs: list[dict[str, Any] | None] = [doc if len(doc := _pairs(line)) >= 2 else None for line in lines]
        return columns_from_mappings(docs, self._aliases, source, first_lineno, self.name)


def _pairs(line: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        doc[key] = value
    return doc

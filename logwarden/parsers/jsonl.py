"""JSON lines with ECS field names or common aliases."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from logwarden.event import Event
from logwarden.parsers.base import ParserOptions, load_json_object
from logwarden.parsers.mapping import AliasIndex, columns_from_mappings, event_from_mapping, merge_aliases
from logwarden.rows import ParsedColumns


class JsonLines:
    name: ClassVar[str] = "json"

    def __init__(self, options: ParserOptions) -> None:
        self._aliases = AliasIndex(merge_aliases(options.json_aliases))

    def sniff(self, line: str) -> bool:
        return line.startswith("{") and line.rstrip().endswith("}")

    def parse(self, line: str, source: str, lineno: int) -> Event:
        doc = load_json_object(line)
        return event_from_mapping(doc, self._aliases, source, lineno, self.name)

    def parse_columns(self, lines: list[str], source: str, first_lineno: int) -> ParsedColumns:
        """``parse`` of consecutive lines as columns (``logwarden.rows``); a line that is not a
        JSON object is left to ``parse``, which names what is wrong with it."""
        docs: list[dict[str, Any] | None] = []
        loads = orjson.loads
        for line in lines:
            try:
                doc = loads(line)
            except orjson.JSONDecodeError:
                doc = None
            docs.append(doc if type(doc) is dict else None)
        return columns_from_mappings(docs, self._aliases, source, first_lineno, self.name)

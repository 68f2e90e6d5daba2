"""JSON lines with ECS field names or common aliases."""

from __future__ import annotations

from typing import ClassVar

from logwarden.event import Event
from logwarden.parsers.base import ParserOptions, load_json_object
from logwarden.parsers.mapping import AliasIndex, event_from_mapping, merge_aliases


class JsonLines:
    name: ClassVar[str] = "json"

    def __init__(self, options: ParserOptions) -> None:
        self._aliases = AliasIndex(merge_aliases(options.json_aliases))

    def sniff(self, line: str) -> bool:
        return line.startswith("{") and line.rstrip().endswith("}")

    def parse(self, line: str, source: str, lineno: int) -> Event:
        doc = load_json_object(line)
        return event_from_mapping(doc, self._aliases, source, lineno, self.name)

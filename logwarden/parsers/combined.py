"""nginx / Apache combined and common log format (with or without ``$remote_user``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import ClassVar

from logwarden.errors import ParseError
from logwarden.event import Event
from logwarden.parsers.base import ParserOptions, as_int, outcome_from_status
from logwarden.timeutil import parse_clf

# host ident user [time] "request" status bytes ["referer" "agent"]
# _FAST handles the usual line, one without a backslash: there [^"]* is [^"\\]*, and a class of one
# negated character is what the regex engine scans fastest (2x faster on a whole line). A line
# it does not match goes to _LINE, which also takes \" escapes and gives the same groups.
_FAST = re.compile(
    r'^(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}|-) (?P<bytes>\d+|-)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?$'
)
_LINE = re.compile(
    r'^(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+|"[^"]*") \[(?P<time>[^\]]+)\] '
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)


@lru_cache(maxsize=1024)
def _status(text: str) -> tuple[int | None, str | None]:
    """``(code, outcome)`` of a status field: a handful of distinct values, so read once each."""
    code = as_int(text)
    return code, outcome_from_status(code)


class CombinedLog:
    name: ClassVar[str] = "combined"

    def __init__(self, options: ParserOptions) -> None:
        self._options = options

    def sniff(self, line: str) -> bool:
        return _LINE.match(line) is not None

    def parse(self, line: str, source: str, lineno: int) -> Event:
        m = (_FAST.match(line) if "\\" not in line else None) or _LINE.match(line)
        if m is None:
            raise ParseError("not in combined/common log format")
        ip, _, user, time, request, status_text, size, referer, agent = m.groups()
        ts = parse_clf(time)
        method = path = query = None
        parts = request.split(" ")
        if len(parts) >= 2 and parts[0].isalpha():
            method, target = parts[0], parts[1]
            path, _, query = target.partition("?")
        elif request not in ("", "-"):
            path = request  # junk probes like "\x16\x03\x01" still show what was sent
        status, outcome = _status(status_text)
        user = user.strip('"')
        return Event(  # positionally: see EVENT_ORDER
            ts, source, lineno, self.name,  # timestamp, source, line, dataset
            "http_request", outcome, "web",  # action, outcome, category
            None if user in ("-", "") else user,  # user_name
            ip,  # source_ip
            None if agent in (None, "", "-") else agent,  # user_agent
            method, path, query or None,  # http_method, url_path, url_query
            status, as_int(size), path,  # status_code, bytes, resource
            None, None,  # host_name, event_id
            None if referer in (None, "", "-") else {"http.request.referrer": referer},  # extra
        )

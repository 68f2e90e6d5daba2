"""nginx / Apache combined and common log format (with or without ``$remote_user``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import ClassVar

from logwarden.errors import ParseError
from logwarden.event import Event
from logwarden.parsers.base import EVENT_ORDER, ParserOptions, as_int, outcome_from_status
from logwarden.rows import ParsedColumns
from logwarden.timeutil import parse_clf, parse_clf_many

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


# ``parse_columns``: _LINE for lines without a backslash (there it is _FAST without the end
# anchor: what ``parse`` falls back to when a line carries more fields after the agent, as many
# nginx formats do), over a whole batch joined by line breaks: one tuple per line (a line it does
# not match gives empty groups through the last branch). Its classes may cross a line break (a
# class of one negated character is 2.5x faster than [^"\n]): then the tuples are fewer than the
# lines, and the batch is read line by line (_ONE).
_BODY = (r'(\S+) (\S+) (\S+|"[^"]*") \[([^\]]+)\] "([^"]*)" (\d{3}|-) (\d+|-)'
         r'(?: "([^"]*)" "([^"]*)")?.*')
_BATCH = re.compile(f"(?m)^(?:{_BODY}|.*)$")
_ONE = re.compile(_BODY)
_NONE = ("",) * 9


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
        method, path, query = _request(request)
        status, outcome = _status(status_text)
        user = user.strip('"')
        return Event(  # positionally: see EVENT_ORDER
            ts, source, lineno, self.name,  # timestamp, source, line, dataset
            "http_request", outcome, "web",  # action, outcome, category
            None if user in ("-", "") else user,  # user_name
            ip,  # source_ip
            None if agent in (None, "", "-") else agent,  # user_agent
            method, path, query,  # http_method, url_path, url_query
            status, as_int(size), path,  # status_code, bytes, resource
            None, None,  # host_name, event_id
            None if referer in (None, "", "-") else {"http.request.referrer": referer},  # extra
        )

    def parse_columns(self, lines: list[str], source: str, first_lineno: int) -> ParsedColumns:
        """``parse`` of consecutive lines as columns (``logwarden.rows``): one regex scan of the
        whole batch, each distinct time and request read once. A line it leaves to ``parse``
        (with a backslash, one _LINE does not match, or with an unreadable time) is not ``ok``;
        every other row is the event ``parse`` gives (``tests/test_parsers.py``)."""
        n = len(lines)
        if not n:
            return ParsedColumns(tuple([] for _ in EVENT_ORDER), [])
        joined = "\n".join(lines)
        found = _BATCH.findall(joined)
        if len(found) != n:  # a quote left open on a line: read line by line
            found = [m.groups("") if (m := _ONE.match(line)) else _NONE for line in lines]
        ips, _, users, times, requests, statuses, sizes, referers, agents = zip(*found, strict=True)
        # Each distinct text of a column is read once, and its rows take its reading.
        stamps = parse_clf_many(dict.fromkeys(times))
        timestamps = list(map(stamps.__getitem__, times))
        if "\\" not in joined and "" not in ips and None not in stamps.values():  # the usual batch
            ok = [True] * n
        else:
            ok = [bool(ip) and ts is not None and "\\" not in line
                  for ip, ts, line in zip(ips, timestamps, lines, strict=True)]
        targets = {r: _request(r) for r in dict.fromkeys(requests)}
        methods, paths, queries = (list(c) for c in zip(*map(targets.__getitem__, requests), strict=True))
        codes = {s: _status(s) for s in dict.fromkeys(statuses)}
        status, outcome = (list(c) for c in zip(*map(codes.__getitem__, statuses), strict=True))
        names = {u: None if (name := u.strip('"')) in ("-", "") else name for u in dict.fromkeys(users)}
        clients = {a: None if a in ("", "-") else a for a in dict.fromkeys(agents)}
        sizes = [int(b) if b and b != "-" and len(b) < 19 else as_int(b) for b in sizes]
        extra = [None if r in ("", "-") else {"http.request.referrer": r} for r in referers]
        none = [None] * n
        values = (timestamps, [source] * n, list(range(first_lineno, first_lineno + n)), [self.name] * n,
                  ["http_request"] * n, outcome, ["web"] * n, list(map(names.__getitem__, users)), list(ips),
                  list(map(clients.__getitem__, agents)), methods, paths, queries,
                  status, sizes, paths, none, none, extra)
        return ParsedColumns(values, ok)


def _request(request: str) -> tuple[str | None, str | None, str | None]:
    """``(method, path, query)`` of a request line, as ``parse`` reads it."""
    method = path = query = None
    parts = request.split(" ")
    if len(parts) >= 2 and parts[0].isalpha():
        method, target = parts[0], parts[1]
        path, _, query = target.partition("?")
    elif request not in ("", "-"):
        path = request  # junk probes like "\x16\x03\x01" still show what was sent
    return method, path, query or None

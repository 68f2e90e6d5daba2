"""A batch's events as columns (``logwarden.rows``): read as the events themselves would be, and
built only where something passes them on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from logwarden.anomaly.features import principal_of, principals_of
from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.rows import EventRows
from logwarden.rules import RuleIndex
from logwarden.rules.loader import default_rule_files, load_rules
from logwarden.standard import SourceChecker, load_profile
from tests.conftest import NOW

START = NOW - timedelta(hours=2)


def web_lines(n: int) -> list[str]:
    """A web log with the usual mix: most requests anonymous and ordinary, a few logins,
    admin paths and scanners."""
    out = []
    for k in range(n):
        t = (START + timedelta(seconds=k)).astimezone(UTC)
        odd = k % 25 == 0  # one line in 25: a login, an admin page, a probe
        user = "bob" if k % 50 == 0 else "-"
        path = ["/login", "/admin/users", "/.env"][k % 3] if odd else ["/", "/static/app.css", "/items?id=7"][k % 3]
        status = [401, 403, 404][k % 3] if odd else 200
        agent = ["curl/8.0", "sqlmap/1.7"][k % 2] if odd else ["Mozilla/5.0", "Googlebot/2.1"][k % 2]
        out.append(f'203.0.113.{k % 50} - {user} [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" '
                   f'{status} {k} "-" "{agent}"')
    return out


def checked(lines: list[str]) -> tuple[EventRows, SourceChecker]:
    checker = SourceChecker(load_profile(), build_parser("combined", ParserOptions(now=NOW)), "access.log",
                            now=lambda: NOW)
    rows, _ = checker.check_batch(lines, 1)
    return rows, checker


def test_rows_read_by_column_are_the_events_themselves() -> None:
    lines = web_lines(300)
    rows, _ = checked(lines)
    events = list(rows)
    assert len(events) == len(rows) == 300 and all(type(e) is Event for e in events)
    for name in ("@timestamp", "source.ip", "user.name", "url.path", "url.query", "http.response.status_code",
                 "user_agent.original", "log.file.line", "event.dataset"):
        assert rows.column(name) == [e.get(name) for e in events], name
    assert rows.column("extra") == [e.extra for e in events]
    assert rows.column("event.id") is None  # derived: read from the events themselves
    assert rows[7] is rows[7]  # built once


def test_rows_mixed_with_whole_events_keep_their_line_order() -> None:
    """A redacted line's event (the full path's) sits among the rows in its place."""
    lines = web_lines(60)
    lines[10] = lines[10].replace("GET /", "GET /?key=AKIAZ7QXWK3PLM4RT2VB&x=")
    rows, checker = checked(lines)
    assert checker.scorecard.redacted == 1
    assert [e.line for e in rows] == list(range(1, 61))
    assert "AKIAZ7QXWK3PLM4RT2VB" not in repr(rows[10]) and "REDACTED" in (rows[10].url_query or "")
    assert rows.column("url.query") == [e.url_query for e in rows]


def test_routing_and_the_models_feed_build_only_the_events_they_pass_on() -> None:
    lines = web_lines(2000)
    rows, _ = checked(lines)
    index = RuleIndex(load_rules(default_rule_files()).enabled())
    routed = index.route(rows, thin=True)
    principals = principals_of(rows)
    passed = {id(e) for _, (_, e) in routed} | {id(e) for _, e in principals}
    assert 0 < len(passed) < len(lines) // 2  # most web events go nowhere
    assert len(rows._built) == len(passed)  # what was built is what was passed on
    # the same as asked of the events themselves
    again, _ = checked(lines)
    events = list(again)
    assert [(k, f, e.line, e.relevant) for k, (f, e) in index.route(events, thin=True)] == \
        [(k, f, e.line, e.relevant) for k, (f, e) in routed]
    assert [(p, e.line) for p, e in principals] == \
        [(principal_of(e), e.line) for e in events if principal_of(e) is not None]


def test_a_batch_of_events_reads_as_rows_too() -> None:
    events = [Event(datetime(2026, 11, 26, 10, k, tzinfo=UTC), "s", k + 1, "json", user_name=["a", None][k % 2])
              for k in range(6)]
    rows = EventRows.of(events)
    assert list(rows) == events and rows[3] is events[3]
    assert rows.column("user.name") == ["a", None] * 3
    assert [p for p, _ in principals_of(rows)] == ["a", "a", "a"]

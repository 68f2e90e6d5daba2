"""A replay's watermark (``logwarden.replay``) and the floors the standard gives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from logwarden.parsers import ParserOptions, build_parser
from logwarden.replay import ReplayClock
from logwarden.standard import SourceChecker, TimestampPolicy, load_profile

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_the_watermark_is_the_lowest_floor_of_the_inputs_still_read() -> None:
    clock = ReplayClock(["a", "b"])
    assert clock.watermark() is None  # no input read yet
    clock.advance("a", T0 + 5 * H)
    assert clock.watermark() is None  # "b" not read: its first events could be any time
    clock.advance("b", T0 + 2 * H)
    assert clock.watermark() == T0 + 2 * H
    clock.advance("b", T0 + H)  # a floor never goes back
    assert clock.watermark() == T0 + 2 * H
    clock.advance("b", T0 + 9 * H)
    assert clock.watermark() == T0 + 5 * H
    clock.finished("a")  # read to its end: holds nothing back
    assert clock.watermark() == T0 + 9 * H
    clock.finished("b")
    assert clock.watermark() is None


def test_an_input_without_a_bound_or_not_named_leaves_no_watermark() -> None:
    clock = ReplayClock(["a", "b"])
    clock.advance("a", T0)
    clock.advance("b", None)  # its profile sets no max_age
    assert clock.watermark() is None
    clock = ReplayClock(["a"])
    clock.advance("a", T0)
    clock.advance("elsewhere", T0 + H)  # a chunk of an input the clock was not made for
    assert clock.watermark() is None


def test_an_input_ahead_of_another_waits_and_the_slowest_never_does() -> None:
    clock = ReplayClock(["a", "b", "c"], slack=H)
    clock.advance("a", None, T0 + 3 * H)
    assert not clock.ahead("a")  # the others' times are not known yet
    clock.advance("b", None, T0)
    assert clock.ahead("a") and not clock.ahead("b") and not clock.ahead("c")
    clock.advance("b", None, T0 + 2 * H + timedelta(minutes=30))  # within the slack
    assert not clock.ahead("a")
    clock.advance("a", None, T0 + 6 * H)
    assert clock.ahead("a")
    clock.finished("b")  # a finished input holds no one back
    assert not clock.ahead("a")


def test_keys_are_told_each_day_of_watermark_until_it_has_passed_them() -> None:
    clock = ReplayClock(["a"], every=timedelta(days=1))
    day = timedelta(days=1)
    clock.sent("rules", "source.ip=1.2.3.4", T0 + H)
    clock.sent("features", "alice", T0 + 3 * day)
    assert clock.due(None) == []
    assert sorted(clock.due(T0)) == [("features", "alice"), ("rules", "source.ip=1.2.3.4")]
    assert clock.due(T0 + 12 * H) == []  # less than a day of watermark since
    assert sorted(clock.due(T0 + 2 * day)) == [("features", "alice"), ("rules", "source.ip=1.2.3.4")]
    # the watermark is now a day past the rule key's newest event: it is not told again
    assert clock.due(T0 + 3 * day) == [("features", "alice")]
    assert clock.due(T0 + 5 * day) == [("features", "alice")]
    assert clock.due(T0 + 6 * day) == []
    clock.sent("rules", "source.ip=1.2.3.4", T0 + 7 * day)  # events again: told again
    assert clock.due(T0 + 7 * day) == [("rules", "source.ip=1.2.3.4")]


def _checker(policy: TimestampPolicy) -> SourceChecker:
    profile = load_profile().model_copy(update={"timestamp": policy, "sources": {}})
    return SourceChecker(profile, build_parser("json", ParserOptions()), "api.jsonl", now=lambda: T0)


def _line(ts: datetime) -> str:
    return orjson.dumps({"@timestamp": ts.isoformat(), "user": "u", "src_ip": "10.0.0.1", "action": "read",
                         "outcome": "success"}).decode()


def test_a_source_floor_is_its_newest_event_less_the_age_the_standard_allows() -> None:
    checker = _checker(TimestampPolicy(max_age=timedelta(hours=6), max_future_skew=timedelta(days=999)))
    assert checker.floor(T0) is None  # nothing accepted yet: anything may come
    events, _ = checker.check_batch([_line(T0 + 10 * H), _line(T0 + 20 * H)], 1)
    assert len(events) == 2
    assert checker.floor(T0) == T0 + 14 * H
    # what the floor promises: an event older than it is not passed on
    events, violations = checker.check_batch([_line(T0 + 13 * H), _line(T0 + 14 * H)], 3)
    assert [e.timestamp for e in events] == [T0 + 14 * H]
    assert [v.reason for v in violations if hasattr(v, "reason")] == ["bad_timestamp"]


def test_a_wallclock_or_unbounded_age_gives_its_own_floor() -> None:
    wall = _checker(TimestampPolicy(max_age=timedelta(days=2), age_reference="wallclock"))
    assert wall.floor(T0) == T0 - timedelta(days=2)
    assert _checker(TimestampPolicy(max_age=None)).floor(T0) is None

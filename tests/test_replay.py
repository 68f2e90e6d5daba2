"""A replay's watermark (``logwarden.replay``) and the floors the standard gives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def test_keys_are_told_each_day_of_watermark_once_it_has_passed_them_until_a_day_past() -> None:
    clock = ReplayClock(["a"], every=timedelta(days=1))
    day = timedelta(days=1)
    clock.sent("rules", "source.ip=1.2.3.4", T0 + H, T0 + H)
    clock.sent("features", "alice", T0 + 3 * day, T0 + 3 * day)
    assert clock.due(None) == []
    assert clock.due(T0) == []  # the watermark has passed no event of theirs: nothing to fold
    assert clock.due(T0 + 2 * H) == []  # less than a day of watermark since
    assert clock.due(T0 + day + H) == [("rules", "source.ip=1.2.3.4")]
    assert clock.due(T0 + 2 * day + H) == [("rules", "source.ip=1.2.3.4")]  # its windows may close now
    # the watermark is now more than a day past the rule key's newest event: it is not told again
    assert clock.due(T0 + 3 * day + H) == [("features", "alice")]
    assert clock.due(T0 + 4 * day + H) == [("features", "alice")]
    assert clock.due(T0 + 5 * day + H) == []
    clock.sent("rules", "source.ip=1.2.3.4", T0 + 7 * day, T0 + 8 * day)  # events again: told again
    assert clock.due(T0 + 6 * day + H) == []
    assert clock.due(T0 + 7 * day + H) == [("rules", "source.ip=1.2.3.4")]
    # events older than the watermark (a chunk's own, folded with it): told at the next round
    clock.sent("features", "bob", T0 + 7 * day, T0 + 7 * day)
    assert clock.due(T0 + 8 * day + H) == [("rules", "source.ip=1.2.3.4"), ("features", "bob")]


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


def _web(path: Path, start: datetime, step: timedelta, n: int) -> None:
    """``n`` web lines ``step`` apart; of every 500, 50 from one scanning address (``web-404-burst``)."""
    lines = []
    for i in range(n):
        when = (start + i * step).strftime("%d/%b/%Y:%H:%M:%S +0000")
        who, status = ("192.0.2.99", 404) if i % 500 < 50 else (f"10.0.0.{i % 250}", 200)
        lines.append(f'{who} - - [{when}] "GET /x{i}.php HTTP/1.1" {status} 1 "-" "curl/8"\n')
    path.write_text("".join(lines))


def test_file_partitions_read_abreast_in_event_time(tmp_path: Path) -> None:
    """The partitions with a clock, the standard step played by telling the clock each chunk's
    newest time: a file with a line a minute and one with a line a second are read abreast."""
    from logwarden.sources.bytewax.files import LogFileSource

    _web(tmp_path / "slow.log", T0, timedelta(minutes=1), 600)  # 10 hours in 600 lines
    _web(tmp_path / "fast.log", T0, timedelta(seconds=1), 6000)  # 100 minutes in 6,000 lines
    paths = [str(tmp_path / "slow.log"), str(tmp_path / "fast.log")]
    source = LogFileSource([(p, "combined") for p in paths], chunk_size=100)
    clock = source.pace = ReplayClock(paths, slack=H)
    parts = {p: source.build_part("read", p, None) for p in paths}
    newest: dict[str, datetime] = {}
    spread, ended, waits = timedelta(0), set(), 0
    while len(ended) < len(parts):
        for path, part in parts.items():
            if path in ended:
                continue
            try:
                chunks = part.next_batch()
            except StopIteration:
                ended.add(path)
                continue
            waits += not chunks
            for chunk in chunks:
                if chunk.last:
                    clock.finished(path)
                    newest.pop(path, None)
                elif chunk.lines:
                    newest[path] = T0 + timedelta(minutes=1 if path == paths[0] else 1 / 60) * (
                        chunk.first_line + len(chunk.lines) - 2)
                    clock.advance(path, None, newest[path])
            if len(newest) == 2:
                spread = max(spread, abs(newest[paths[0]] - newest[paths[1]]))
    assert waits > 0  # the slow file (in lines) was ahead in time, and waited
    assert spread <= H + timedelta(minutes=100)  # the slack, and one chunk of the slow file
    assert all(part._ended for part in parts.values())


def test_a_replay_with_empty_and_unreadable_files_ends_with_the_same_alerts(tmp_path: Path) -> None:
    """An empty file (only its last chunk) and a file no line of which is read (no floor, no
    time) hold nothing back: the replay ends, with what it gives without a watermark."""
    from bytewax.testing import TestingSink, run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.sources.bytewax.files import LogFileSource

    _web(tmp_path / "a.log", T0, timedelta(seconds=1), 3000)
    _web(tmp_path / "b.log", T0 + 30 * H, timedelta(seconds=2), 3000)  # a later period
    (tmp_path / "empty.log").write_text("")
    (tmp_path / "junk.log").write_text("not a log line\n" * 50)
    inputs = [(str(tmp_path / n), "combined") for n in ("a.log", "b.log", "empty.log", "junk.log")]

    def run(clock: bool) -> tuple[list[str], list[str]]:
        source = LogFileSource(inputs, chunk_size=200)
        replay_clock = source.pace = ReplayClock(p for p, _ in inputs) if clock else None
        config = FlowConfig(profile=load_profile(), parser_options=ParserOptions(),
                            rules=load_rules(default_rule_files()).enabled(), replay_clock=replay_clock)
        alerts: list = []
        violations: list = []
        run_main(build_flow(config, source, Sinks([TestingSink(alerts)], [TestingSink(violations)], [])))
        return (sorted(orjson.dumps(a.to_dict()).decode() for _, a in alerts),
                sorted(orjson.dumps(v.to_dict()).decode() for _, v in violations))

    with_clock, without = run(True), run(False)
    assert with_clock == without
    assert len(with_clock[1]) == 50  # every junk line a violation
    assert len(with_clock[0]) >= 12  # each scan of each file (and the standard's alerts)


def test_a_run_has_a_replay_clock_only_for_files_read_on_one_worker(tmp_path: Path) -> None:
    from logwarden.app import build_sources, replay_clock
    from logwarden.settings import Settings

    _web(tmp_path / "a.log", T0, timedelta(seconds=1), 10)
    _web(tmp_path / "b.log", T0, timedelta(seconds=1), 10)
    files = [str(tmp_path / "a.log"), str(tmp_path / "b.log")]

    def clock(settings: Settings, inputs: list[str], follow: bool = False) -> ReplayClock | None:
        sources, described, _ = build_sources(settings, inputs, None, ParserOptions(), follow)
        made = replay_clock(settings, sources, described, follow)
        assert all(getattr(s, "pace", None) is made for s in sources)  # the files read abreast with it
        return made

    made = clock(Settings(), files)
    assert made is not None
    made.advance(files[0], T0)
    assert made.watermark() is None  # the other file is one of its inputs too
    made.advance(files[1], T0 + H)
    assert made.watermark() == T0
    assert clock(Settings(workers=2), files) is None  # items of two workers may overtake each other
    assert clock(Settings(), files, follow=True) is None  # live runs have their own watermarks
    assert clock(Settings(), [*files, str(tmp_path / "*.log")]) is None  # a glob's files come and go

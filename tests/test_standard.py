"""The logging standard: every reason, the age/skew policy, profile errors, scorecards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logwarden import secrets
from logwarden.errors import ConfigError
from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.scopes import Scope
from logwarden.standard import Profile, SourceChecker, load_profile
from tests.conftest import NOW


def checker(fmt: str = "json", profile_path: Path | None = None) -> SourceChecker:
    return SourceChecker(load_profile(profile_path), build_parser(fmt, ParserOptions(now=NOW)),
                         "app.jsonl", now=lambda: NOW)


def j(**doc: object) -> str:
    base = {"@timestamp": "2026-11-26T11:00:00Z", "user": "bob", "ip": "1.2.3.4",
            "action": "read", "outcome": "success"}
    base.update(doc)
    return orjson.dumps({k: v for k, v in base.items() if v is not None}).decode()


@pytest.mark.parametrize(("line", "reason", "detail"), [
    (j(), None, None),
    ("{oops", "malformed", "invalid JSON"),
    # an API or database gateway must name its user (PCI DSS 10.2.2), an address is not enough
    (j(user=None, ip=None), "missing_field", "missing user.name (a json record must name its user)"),
    (j(user=None), "missing_field", "missing user.name"),
    (j(action=None), "missing_field", "event.action"),
    (j(outcome=None), "missing_field", "event.outcome"),
    (j(**{"@timestamp": None}), "bad_timestamp", "missing"),
    (j(**{"@timestamp": "last tuesday"}), "bad_timestamp", "unparseable"),
    (j(**{"@timestamp": "2026-11-26T11:00:00"}), "bad_timestamp", "no timezone"),
    (j(**{"@timestamp": "2026-11-26T13:00:00Z"}), "bad_timestamp", "in the future"),
    (j(note="key AKIAZ7QXWK3PLM4RT2VB"), "secret", "aws-access-token"),
])
def test_each_line_ends_as_one_outcome(line: str, reason: str | None, detail: str | None) -> None:
    c = checker()
    event, violation = c.check_line(line, 3)
    if reason is None:
        assert event is not None and violation is None
        assert event.timestamp is not None and event.timestamp.tzinfo is UTC
        return
    assert violation is not None and violation.reason == reason and detail in violation.detail
    assert violation.source == "app.jsonl" and violation.line == 3
    assert (event is not None) == (reason == "secret")
    assert violation.action == ("redacted" if reason == "secret" else "dropped")


def test_a_blank_line_is_counted_but_is_no_record() -> None:
    """#14: many real files end with an empty line; it is neither an event nor a violation, and
    compliance is judged over the records only."""
    c = checker()
    out = list(c.check_lines([j(), "", "   \t", "{oops", j()], 1))
    assert [type(x).__name__ for x in out if type(x).__name__ in ("Event", "Violation")] == \
        ["Event", "Violation", "Event"]
    assert [x.line for x in out if type(x).__name__ == "Violation"] == [4]
    card = c.scorecard
    assert (card.lines, card.blank, card.events, card.compliant) == (5, 2, 2, 2)
    assert card.compliance_rate == 2 / 3 and card.to_dict()["blank"] == 2


def test_age_is_judged_against_the_newest_event_of_the_source() -> None:
    """Replaying a year-old archive works with the defaults; disorder beyond max_age does not."""
    c = checker()
    old = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    for k in range(3):
        event, violation = c.check_line(j(**{"@timestamp": (old + timedelta(hours=k)).isoformat()}), k + 1)
        assert violation is None and event is not None
    _, violation = c.check_line(j(**{"@timestamp": (old - timedelta(days=9)).isoformat()}), 4)
    assert violation is not None and violation.reason == "bad_timestamp"
    assert "older than the newest event of this source" in violation.detail


def test_wallclock_age_reference(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("name: strict\ntimestamp: {age_reference: wallclock, max_age: 1d}\n"
                       "required: ['@timestamp', 'event.action']\n")
    c = checker(profile_path=profile)
    _, violation = c.check_line(j(**{"@timestamp": "2026-11-20T00:00:00Z"}), 1)
    assert violation is not None and "older than now" in violation.detail


def test_syslog_without_zone_is_read_as_utc_by_default() -> None:
    c = checker("syslog")
    event, violation = c.check_line("Nov 26 10:00:00 h sshd[1]: Connection closed by 1.2.3.4 port 2", 1)
    assert violation is None and event is not None
    assert event.timestamp == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_raw_private_key_block_is_never_echoed() -> None:
    c = checker()
    lines = ["-----BEGIN OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA",
             "QyNTUxOQAAACBdZ2N0", "-----END OPENSSH PRIVATE KEY-----", j()]
    out = [c.check_line(line, i + 1) for i, line in enumerate(lines)]
    for event, violation in out[:4]:
        assert event is None and violation.reason == "secret"
        assert "b3Blbn" not in violation.excerpt and "QyNTUx" not in violation.excerpt
    assert out[4][0] is not None and out[4][1] is None


@pytest.mark.parametrize(("doc", "fragment"), [
    ("name: x\nrequired: ['user.nmae']\n", "unknown field 'user.nmae'"),
    ("name: x\nsources: {nginx2: {}}\n", "unknown source type"),
    ("name: x\ntimestamp: {max_age: forever}\n", "not a duration"),
    ("name: x\ntreshold: 3\n", "treshold"),
    ("name: x\nsources: {json: {secrets_expected: [passwords]}}\n", "unknown secret kind"),
    ("name: [unclosed\n", "standard profile"),
])
def test_profile_errors_name_the_problem(tmp_path: Path, doc: str, fragment: str) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(doc)
    with pytest.raises(ConfigError, match="profile") as err:
        load_profile(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_scorecard_counts_every_line() -> None:
    c = checker()
    lines = [j(), j(user=None, ip=None), j(note="password=hunter2"), "{bad"]
    list(c.check_lines(lines, 1))
    card = c.scorecard.to_dict()
    assert card["lines"] == 4 and card["events"] == 2 and card["compliant"] == 1
    assert card["dropped"] == 2 and card["redacted"] == 1
    assert card["violations"] == {"malformed": 1, "missing_field": 1, "secret": 1}
    assert card["compliance_rate"] == 0.25


@pytest.mark.parametrize(("kind", "line"), [
    ("aws-access-token", "id=AKIAZ7QXWK3PLM4RT2VB"),
    ("aws-access-token", '"accessKeyId":"ASIA5FLZVX4OI4ZDQJOL"'),
    ("github-pat", "token ghp_R7kPq2ZxV9mW4nL8sT1yB6cD3fG5hJ0aQeUu"),
    ("github-fine-grained-pat", "github_pat_11ABCDEFG0k3Xq9Lm2Vb7Np4Rt8Wz1Yc6Hd5Jf0Gs3Ae7Ku2Mo9Ql4Ti8"
                                "Uw1Rx5Sy6Bv3Cn0Dp7Eh2Fj9Gk4Lm8Nq1Pr6St3Ux5Vz0Xy2"),
    ("stripe-access-token", "sk_live_51HkQ2eLr8mZp4Tx9Wv"),
    ("slack-bot-token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlX3NlY3JldA"),
    ("gitlab-pat", "GET /api/v4/projects?private_token=glpat-x9Kq2LmV7bN4pRt8Wz1Y HTTP/1.1"),
    ("huggingface-access-token", "download with 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 done"),
    ("bearer-token", "Authorization: Bearer mF9.k2Pq-Zx7Lw3Nb8Vc"),
    ("basic-auth", "Authorization: Basic YWxpY2U6aHVudGVyMg=="),
    ("url-password", "postgres://app:Tr0ub4dor-3@db1:5432/app"),
    ("credential-param", "GET /login?user=a&password=hunter2 HTTP/1.1"),
    ("credential-param", '{"api_key": "k-123456"}'),
    ("credential-param", "sessionToken=abc123"),
    ("aws-session-token", '{"credentials": {"sessionToken": "IQoJb3JpZ2luX2VjEKn//////////wEaCXVz"}}'),
    ("private-key", "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY-----"),
])
def test_secret_kinds_are_redacted(kind: str, line: str) -> None:
    found = secrets.redact(line)
    assert found is not None and kind in found.kinds
    assert secrets.marker(kind) in found.text


@pytest.mark.parametrize("line", [
    "Failed password for root from 1.2.3.4 port 22 ssh2",
    "sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls",
    '{"NextToken": "AAIAAUCZLcGdOTmf"}',
    '"principalId":"AIDAICAK2CN5MGHIIDIHA"',
    "GET /blog/tags/puppet?flav=rss20 HTTP/1.1",
])
def test_ordinary_lines_are_not_redacted(line: str) -> None:
    assert secrets.redact(line) is None


@pytest.mark.parametrize(("fmt", "line", "reason"), [
    # an anonymous web request names its address only: compliant
    ("combined", '203.0.113.9 - - [26/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8"', None),
    # a Kubernetes audit event without a user: the API server always names one
    ("k8s_audit", orjson.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get",
                                "requestURI": "/api/v1/pods", "stageTimestamp": "2026-11-26T11:00:00Z",
                                "responseStatus": {"code": 200}, "user": {}}).decode(), "missing_field"),
])
def test_identity_is_declared_per_source_kind(fmt: str, line: str, reason: str | None) -> None:
    c = SourceChecker(load_profile(), build_parser(fmt, ParserOptions()), "x", now=lambda: NOW)
    event, violation = c.check_line(line, 1)
    if reason is None:
        assert event is not None and violation is None
    else:
        assert violation is not None and violation.reason == reason and "user.name" in violation.detail


def test_a_profile_sets_identity_per_source_kind() -> None:
    from pydantic import ValidationError

    from logwarden.standard import Profile

    p = Profile.model_validate({"name": "x", "required": ["@timestamp"], "identity": "user_or_address",
                                "sources": {"combined": {"identity": "none"}}})
    assert p.policy_for("combined")[0] == (("@timestamp",),)
    assert p.policy_for("json")[0] == (("@timestamp",), ("user.name", "source.ip"))
    with pytest.raises(ValidationError):
        Profile.model_validate({"name": "x", "identity": "someone"})


def test_a_line_over_the_limit_is_one_too_long_violation_never_parsed_nor_leaked() -> None:
    c = SourceChecker(load_profile(), build_parser("json", ParserOptions(now=NOW)), "app.jsonl",
                      now=lambda: NOW, max_line=2000)
    long = j(password="hunter2-Secr3t", path="/" + "a" * 3000)
    event, violation = c.check_line(long, 7)
    assert event is None and violation is not None and violation.reason == "too_long"
    assert f"{len(long):,} characters" in violation.detail and violation.action == "dropped"
    assert "hunter2" not in violation.excerpt and "[REDACTED:" in violation.excerpt
    assert violation.secret_kinds == ("credential-param",) and len(violation.excerpt) <= 160
    ok, none = c.check_line(j(), 8)
    assert ok is not None and none is None  # the next line is read as ever
    assert (c.scorecard.lines, c.scorecard.dropped, dict(c.scorecard.violations)) == (2, 1, {"too_long": 1})


@pytest.mark.parametrize(("text", "size"), [("65536", 65536), ("64KiB", 65536), ("1MiB", 1048576), ("100k", 100_000)])
def test_the_line_limit_reads_sizes(monkeypatch: pytest.MonkeyPatch, text: str, size: int) -> None:
    from logwarden.app import parser_options
    from logwarden.settings import Settings

    monkeypatch.setenv("LOGWARDEN_MAX_LINE", text)
    assert Settings().max_line == size and parser_options(Settings()).max_line == size


def test_a_bad_line_limit_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from logwarden.settings import Settings

    monkeypatch.setenv("LOGWARDEN_MAX_LINE", "lots")
    with pytest.raises(ValidationError, match="65536, 64KiB or 1MiB"):
        Settings()


# -- the lane of plain lines (``check_lines``) against the full path, line by line -----------------

_KINDS = {
    "plain": lambda t: j(**{"@timestamp": t}),
    "same_time": lambda t: j(**{"@timestamp": t}, note="again"),
    "old": lambda t: j(**{"@timestamp": "2026-11-01T00:00:00Z"}),  # older than max_age behind the newest
    "future": lambda t: j(**{"@timestamp": "2026-11-27T00:00:00Z"}),
    "naive": lambda t: j(**{"@timestamp": t.rstrip("Z")}),
    "missing": lambda t: j(**{"@timestamp": t}, user=None),
    "secret": lambda t: j(**{"@timestamp": t}, note="key AKIAZ7QXWK3PLM4RT2VB"),
    "malformed": lambda t: "{oops",
    "blank": lambda t: "   ",
    "key_block": lambda t: "-----BEGIN RSA PRIVATE KEY-----",
    "key_end": lambda t: "-----END RSA PRIVATE KEY-----",
    "too_long": lambda t: j(**{"@timestamp": t}, note="x" * 70_000),
    "payment": lambda t: j(**{"@timestamp": t}, path="/payments/7"),
}


def _scoped(profile: Profile) -> Profile:
    """Compliance scopes by resource (payments, logins) and by source (every ``.log`` file)."""
    return profile.model_copy(update={"scopes": {"cardholder-data": Scope(resources=["/payments*", "/login"]),
                                                 "everything": Scope(sources=["*.log"])}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(_KINDS)), st.integers(0, 3 * 86400)), min_size=1, max_size=120),
       st.lists(st.integers(1, 40), min_size=1, max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_plain_lines_take_a_lane_that_ends_where_the_full_path_ends(
        lines: list[tuple[str, int]], cuts: list[int], wallclock: bool, zoneless: bool, scoped: bool) -> None:
    """Whatever the mix of lines (in and out of order, over day boundaries, bad ones between)
    and however they are cut into chunks, with compliance scopes or without: the same outputs,
    and the same state."""
    start = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    text = [_KINDS[kind]((start + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")) for kind, s in lines]
    profile = load_profile()
    policy = {"age_reference": "wallclock", "max_age": timedelta(days=2)} if wallclock else {}
    if zoneless:  # a time without a zone read as UTC (syslog's default)
        policy["require_timezone"] = False
    profile = profile.model_copy(update={"timestamp": profile.timestamp.model_copy(update=policy)})
    profile = _scoped(profile) if scoped else profile
    results = []
    for lane in (True, False):
        c = SourceChecker(profile, build_parser("json", ParserOptions(now=NOW)), "app.jsonl", now=lambda: NOW)
        c.lane = lane
        out, at, k = [], 0, 0
        while at < len(text):
            size = cuts[k % len(cuts)]
            out += [repr(x) for x in c.check_lines(text[at:at + size], at + 1)]
            at, k = at + size, k + 1
        out += [repr(x) for x in c.finish()]
        results.append((out, c.snapshot(), c.newest))
    assert results[0] == results[1]  # the state by value (which equal datetimes are one object may differ)


# -- a batch read as columns (``check_batch``) against the line-by-line paths ---------------------

_CLF_KINDS = {
    "plain": lambda t: f'10.0.0.{t.second % 9} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /a?x={t.second} HTTP/1.1" '
                       '200 5 "-" "curl/8"',
    "user": lambda t: f'10.0.0.1 - bob [{t:%d/%b/%Y:%H:%M:%S} +0100] "POST /login HTTP/1.1" 401 - "-" "-"',
    "old": lambda t: '10.0.0.1 - - [01/Nov/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 5',
    "future": lambda t: '10.0.0.1 - - [27/Nov/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 5',
    "zoneless": lambda t: f'10.0.0.1 - - [{t:%d/%b/%Y:%H:%M:%S}] "GET / HTTP/1.1" 200 5',
    "bad_time": lambda t: '10.0.0.1 - - [99/Nov/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 5',
    "escaped": lambda t: f'10.0.0.1 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /\\"q HTTP/1.1" 200 5 "-" "a\\"b"',
    "secret": lambda t: f'10.0.0.1 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /?k=AKIAZ7QXWK3PLM4RT2VB HTTP/1.1" 200 5',
    "url_password": lambda t: f'10.0.0.1 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET https://u:hunter2pass@h/ HTTP/1.1" '
                              '200 5',
    "malformed": lambda t: "oops",
    "blank": lambda t: "   ",
    "key_block": lambda t: "-----BEGIN RSA PRIVATE KEY-----",
    "key_end": lambda t: "-----END RSA PRIVATE KEY-----",
    "too_long": lambda t: f'10.0.0.1 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /{"x" * 70_000} HTTP/1.1" 200 5',
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(_CLF_KINDS)), st.integers(0, 3 * 86400)), min_size=1, max_size=120),
       st.lists(st.integers(1, 40), min_size=1, max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_a_batch_read_as_columns_ends_where_the_line_by_line_paths_end(
        lines: list[tuple[str, int]], cuts: list[int], wallclock: bool, zoneless: bool, scoped: bool) -> None:
    """``check_batch`` on a format read as columns (combined): per chunk the same events in the
    same order (with their scopes, when the profile names some), the same violations and
    alerts, and the same state and scorecard as ``check_lines`` with and without the lane."""
    start = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    text = [_CLF_KINDS[kind](start + timedelta(seconds=s)) for kind, s in lines]
    profile = load_profile()
    policy = {"age_reference": "wallclock", "max_age": timedelta(days=2)} if wallclock else {}
    if zoneless:
        policy["require_timezone"] = False
    profile = profile.model_copy(update={"timestamp": profile.timestamp.model_copy(update=policy)})
    profile = _scoped(profile) if scoped else profile
    results = []
    for mode in ("batch", "lane", "full"):
        c = SourceChecker(profile, build_parser("combined", ParserOptions(now=NOW)), "access.log", now=lambda: NOW)
        c.lane = mode != "full"
        out, at, k = [], 0, 0
        while at < len(text):
            size = cuts[k % len(cuts)]
            if mode == "batch":
                rows, others = c.check_batch(text[at:at + size], at + 1)
                events = list(rows)
            else:
                items = list(c.check_lines(text[at:at + size], at + 1))
                events = [x for x in items if isinstance(x, Event)]
                others = [x for x in items if not isinstance(x, Event)]
            out.append(([repr(e) for e in events], [repr(x) for x in others]))
            at, k = at + size, k + 1
        out.append(([], [repr(x) for x in c.finish()]))
        results.append((out, c.snapshot(), c.newest, c.scorecard.to_dict()))
    assert results[0] == results[1] == results[2]


@settings(max_examples=60, deadline=None)
@example([30, 40, -50, 70, 20, -30, 60, 45, -80, 100, 30], [40])  # back across midnight
@given(st.lists(st.integers(-60, 90), min_size=1, max_size=160), st.lists(st.integers(1, 60), min_size=1, max_size=5))
def test_a_run_is_counted_in_the_day_and_minute_of_the_newest_time_so_far(steps: list[int], cuts: list[int]) -> None:
    """The lane counts a run of compliant lines at once (``_count_run``, ``observe_compliant``):
    each line in the day and the minute of the source's newest time after it, as the full path
    counts them one by one, when the times step back and forth across minutes and midnight."""
    t = datetime(2026, 11, 24, 23, 56, tzinfo=UTC)
    text = []
    for step in steps:
        t += timedelta(seconds=step)
        text.append(_CLF_KINDS["plain"](t))
    profile = load_profile()  # a window long enough to keep every minute's counts
    profile = profile.model_copy(update={"alerts": profile.alerts.model_copy(
        update={"compliance_window": timedelta(days=2)})})
    counted = []
    for lane in (True, False):
        c = SourceChecker(profile, build_parser("combined", ParserOptions(now=NOW)), "access.log", now=lambda: NOW)
        c.lane = lane
        at, k = 0, 0
        while at < len(text):
            size = cuts[k % len(cuts)]
            if lane:
                c.check_batch(text[at:at + size], at + 1)
            else:
                list(c.check_lines(text[at:at + size], at + 1))
            at, k = at + size, k + 1
        state = c.monitor.state
        counted.append((c.scorecard.days, [(b.start, b.lines, b.compliant) for b in state.buckets], state.now))
    assert counted[0] == counted[1]

"""#14's fuzzing campaign, short: every parser and the standard over generated and mutated
lines (``tests/fuzz/``), and the faults it found, kept as regressions."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logwarden.parsers import ParserOptions, build_parser
from logwarden.parsers.base import as_int
from logwarden.standard import SourceChecker, load_profile
from logwarden.violation import Violation
from tests.fuzz.harness import FORMATS, SECRET, Checker, Findings, campaign, corpus


def test_a_short_campaign_keeps_every_invariant() -> None:
    found = campaign(3000, seed=11)
    assert found.failures == []
    assert found.lines == 3000 and found.longest > 1_000_000  # huge lines were tried
    assert {"event", "malformed", "bad_timestamp", "missing_field", "secret", "too_long"} <= set(found.outcomes)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
                     st.text(max_size=30))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                     max_leaves=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(FORMATS), text=st.text(max_size=300), secret=st.booleans())
def test_any_text_in_any_format_ends_as_one_record_and_never_leaks(fmt: str, text: str, secret: bool) -> None:
    found = Findings()
    Checker().check(fmt, f"{text} {SECRET} " if secret else text, secret, found)
    assert found.failures == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fmt=st.sampled_from(["json", "k8s_audit", "cloudtrail"]))
def test_wrong_types_in_any_field_of_a_real_record_end_as_one_record(data: Any, fmt: str) -> None:
    """Every key of a real record of each JSON format, and a few new ones, take values of any
    JSON type and shape: no parser raises out of the checker, and each line is one record."""
    doc = orjson.loads(data.draw(st.sampled_from(corpus()[fmt])))
    for key in data.draw(st.lists(st.sampled_from([*sorted(doc), "user", "items", "kind"]), max_size=4)):
        doc[key] = data.draw(_JSON)
    found = Findings()
    Checker().check(fmt, orjson.dumps(doc).decode(), False, found)
    assert found.failures == []


@pytest.mark.parametrize(("fmt", "doc", "detail"), [
    ("k8s_audit", {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "verb": "get",
                   "user": "bob", "requestReceivedTimestamp": "2026-11-25T10:00:00Z"},
     "user is a string, not an object"),
    ("k8s_audit", {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "verb": "get",
                   "user": {"username": "bob"}, "sourceIPs": 7, "requestReceivedTimestamp": "2026-11-25T10:00:00Z"},
     "sourceIPs is a number, not an array"),
    ("cloudtrail", {"eventName": "GetObject", "eventSource": "s3.amazonaws.com", "eventTime": "2026-11-25T10:00:00Z",
                    "userIdentity": ["bob"]}, "userIdentity is an array, not an object"),
    ("cloudtrail", {"eventName": "GetObject", "eventSource": "s3.amazonaws.com", "eventTime": "2026-11-25T10:00:00Z",
                    "userIdentity": {"type": "AssumedRole", "sessionContext": "x"}},
     "sessionContext is a string, not an object"),
])
def test_a_field_of_the_wrong_shape_is_named(fmt: str, doc: dict[str, Any], detail: str) -> None:
    """Found by the campaign: these raised AttributeError out of the checker (a crashed flow)."""
    checker = SourceChecker(load_profile(), build_parser(fmt, ParserOptions()), "x")
    [violation] = [x for x in checker.check_lines([orjson.dumps(doc).decode()], 1) if isinstance(x, Violation)]
    assert violation.reason == "malformed" and violation.detail == f"{fmt}: {detail}"


@pytest.mark.parametrize(("value", "expected"), [
    ("12", 12), ("99999999999999999999", None), ("1e999", None), (2**63, None), (-(2**63), -(2**63)), ("3.7", 3)])
def test_integer_fields_stay_within_what_json_outputs_carry(value: object, expected: int | None) -> None:
    """Found by the campaign: a 20-digit byte count became an int no JSON output could write."""
    assert as_int(value) == expected


def test_many_candidate_secrets_in_one_long_line_cost_linear_time() -> None:
    """Found by the campaign: each candidate of gitleaks' generic rule searched the whole line
    for its allow-list again (4,000 candidates in a 200 KB line: 2 s; 1.2 MB: 84 s)."""
    def seconds(n: int) -> float:  # the campaign's line: a pod name's segment repeated n times
        line = '{"kind":"Event","name":"web' + '-7d9f8c6b5-x2k4q","apiVer' * n + '"}'
        checker = SourceChecker(load_profile(), build_parser("k8s_audit", ParserOptions()), "x")
        start = time.perf_counter()
        out = list(checker.check_lines([line], 1))
        assert [getattr(x, "reason", None) for x in out] in (["too_long"], ["malformed"])
        return time.perf_counter() - start

    # 16x the line: about 16x the time (before: 150x, 0.015 s -> 2.2 s)
    small, large = min(seconds(500) for _ in range(3)), min(seconds(8_000) for _ in range(3))
    assert large < 16 * small * 3 + 0.02, (small, large)


@pytest.mark.parametrize("segment", ["passw", "token", "secret_", "pwd"])
def test_a_long_run_of_a_credential_word_is_scanned_in_linear_time(segment: str) -> None:
    """Found by the campaign: the credential detector's gate backtracked on a long run of
    "passwpassw..." (30 KB: 3.6 s in a syslog line). It is an RE2 pattern now."""
    def seconds(n: int) -> float:
        line = "Nov 23 06:42:56 bastion sshd[1]: Failed " + segment * n + " for root from 1.2.3.4 port 22 ssh2"
        checker = SourceChecker(load_profile(), build_parser("syslog", ParserOptions()), "x")
        start = time.perf_counter()
        list(checker.check_lines([line], 1))
        return time.perf_counter() - start

    small, large = min(seconds(400) for _ in range(3)), min(seconds(6_400) for _ in range(3))
    assert large < 16 * small * 3 + 0.02, (small, large)  # 16x the line: not 256x


_ADVERSARIAL = {  # lines built to make a pattern backtrack: long runs, open quotes, repeated prefixes
    "word run": lambda n: "a" * n,
    "open quotes": lambda n: '"' * n,
    "pairs": lambda n: "a=" * (n // 2),
    "escaped request": lambda n: '1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET /' + 'a\\"' * (n // 3),
    "repeated prefix": lambda n: "Nov 25 10:00:00 h sshd[1]: " + "message repeated 3 times: [ " * (n // 28),
    "escaped value": lambda n: 'ts=2026-11-25T10:00:00Z msg="' + '\\"' * (n // 2) + '"',
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_parser_is_linear_in_the_line_even_past_the_default_limit(fmt: str) -> None:
    """#14: with LOGWARDEN_MAX_LINE raised, each parser (its sniff and its parse) takes time in
    proportion to a 1 MB line built to provoke backtracking: 8x the line, about 8x the time."""
    from logwarden.errors import LogwardenError

    parser = build_parser(fmt, ParserOptions(max_line=4 << 20))

    def seconds(line: str) -> float:
        start = time.perf_counter()
        parser.sniff(line)
        try:
            parser.parse(line, "s", 1)
        except LogwardenError:
            pass
        return time.perf_counter() - start

    for kind, build in _ADVERSARIAL.items():
        small = min(seconds(build(125_000)) for _ in range(3))
        large = min(seconds(build(1_000_000)) for _ in range(2))
        assert large < 8 * small * 4 + 0.05, (kind, small, large)

"""Table tests per parser on real-looking lines, the real samples, and properties."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logwarden import timeutil
from logwarden.errors import ParseError, TimestampError
from logwarden.parsers import PARSERS, ParserOptions, build_parser, detect_format
from logwarden.sources import LineReader, sniff_file
from logwarden.standard import SourceChecker, load_profile
from tests.conftest import NOW, real_file

UTC_TS = datetime(2024, 3, 30, 15, 54, 19, tzinfo=UTC)

CASES = [
    # (format, line, expected fields)
    ("combined",
     '83.149.9.216 - bob [30/Mar/2024:15:54:19 +0000] "POST /login?next=/a HTTP/1.1" 401 512 '
     '"-" "curl/8.0"',
     {"source.ip": "83.149.9.216", "user.name": "bob", "http.request.method": "POST",
      "url.path": "/login", "url.query": "next=/a", "http.response.status_code": 401,
      "event.outcome": "failure", "user_agent.original": "curl/8.0", "@timestamp": UTC_TS}),
    ("combined",  # common log format: no referer/agent, no user, timezone offset
     '10.0.0.1 - - [30/Mar/2024:17:54:19 +0200] "GET / HTTP/1.0" 200 -',
     {"source.ip": "10.0.0.1", "user.name": None, "http.response.body.bytes": None,
      "event.outcome": "success", "@timestamp": UTC_TS}),
    ("combined",  # escaped quote inside the request
     r'1.2.3.4 - - [30/Mar/2024:15:54:19 +0000] "GET /a\"b HTTP/1.1" 404 0 "-" "x"',
     {"url.path": '/a\\"b', "http.response.status_code": 404}),
    ("syslog", "Mar 30 15:54:19 web1 sshd[123]: Failed password for invalid user admin from "
               "1.2.3.4 port 22 ssh2",
     {"event.action": "ssh_login", "event.outcome": "failure", "user.name": "admin",
      "source.ip": "1.2.3.4", "host.name": "web1", "user.invalid": True}),
    ("syslog", "Mar 30 15:54:19 web1 sshd[123]: Accepted publickey for deploy from 10.0.0.5 "
               "port 50022 ssh2",
     {"event.action": "ssh_login", "event.outcome": "success", "ssh.method": "publickey"}),
    ("syslog", "Mar 30 15:54:19 web1 sshd[123]: Connection closed by 5.6.7.8 port 4022 [preauth]",
     {"event.action": "ssh_disconnect", "source.ip": "5.6.7.8"}),
    ("syslog", "Mar 30 15:54:19 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
               "COMMAND=/bin/cat /etc/shadow",
     {"event.action": "sudo_command", "event.outcome": "success", "user.name": "alice",
      "user.target.name": "root", "process.command_line": "/bin/cat /etc/shadow"}),
    ("syslog", "Mar 30 15:54:19 web1 sudo: bob : 3 incorrect password attempts ; TTY=pts/1 ; "
               "PWD=/ ; USER=root ; COMMAND=/usr/bin/id",
     {"event.action": "sudo_command", "event.outcome": "failure"}),
    ("syslog", "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= "
               "uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 user=root",
     {"event.action": "pam_auth", "source.ip": "218.188.2.4", "user.name": "root"}),
    ("syslog", "Mar  3 09:00:00 h su: FAILED SU (to root) bob on pts/1",
     {"event.action": "su", "event.outcome": "failure", "user.target.name": "root"}),
    ("syslog", "<34>1 2024-03-30T15:54:19Z host1 sshd 123 - - Failed password for root from "
               "1.2.3.4 port 22 ssh2",
     {"@timestamp": UTC_TS, "event.outcome": "failure", "host.name": "host1"}),
    ("syslog", "2024-03-30T17:54:19+02:00 host1 sshd[9]: Invalid user oracle from 1.2.3.4 port 22",
     {"@timestamp": UTC_TS, "event.action": "ssh_invalid_user", "user.name": "oracle"}),
    ("json", '{"@timestamp":"2024-03-30T15:54:19Z","user":"bob","src_ip":"1.2.3.4",'
             '"action":"login","status":"failed","path":"/login","bytes":12}',
     {"@timestamp": UTC_TS, "user.name": "bob", "source.ip": "1.2.3.4", "event.action": "login",
      "event.outcome": "failure", "url.path": "/login", "http.response.body.bytes": 12}),
    ("json", '{"ts":1711814059,"user":{"name":"al"},"source":{"ip":"9.9.9.9"},'
             '"event":{"action":"read","outcome":"success"},"rows":5}',
     {"@timestamp": UTC_TS, "user.name": "al", "source.ip": "9.9.9.9", "event.action": "read",
      "http.response.body.bytes": 5}),
    ("json", '{"time":1711814059000,"principal":"svc","client_ip":"::1","verb":"get","result":200}',
     {"@timestamp": UTC_TS, "user.name": "svc", "source.ip": "::1", "event.outcome": "success"}),
    ("logfmt", 'ts=2024-03-30T15:54:19Z level=info user="bob smith" action=login status=failed '
               'src_ip=1.2.3.4',
     {"@timestamp": UTC_TS, "user.name": "bob smith", "event.outcome": "failure"}),
    ("k8s_audit",
     '{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","verb":"create",'
     '"user":{"username":"system:serviceaccount:web:deployer","groups":["system:serviceaccounts"]},'
     '"sourceIPs":["10.0.0.8"],"objectRef":{"resource":"clusterrolebindings","name":"pwn"},'
     '"requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",'
     '"responseStatus":{"code":201},"requestReceivedTimestamp":"2024-03-30T15:54:19Z",'
     '"requestObject":{"roleRef":{"name":"cluster-admin"},"subjects":[{"name":"deployer"}]}}',
     {"event.id": "a1", "event.action": "create", "event.outcome": "success",
      "user.name": "system:serviceaccount:web:deployer", "resource": "clusterrolebindings/pwn",
      "k8s.request.role_ref": "cluster-admin", "orchestrator.resource.type": "clusterrolebindings"}),
    ("k8s_audit",
     '{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a2","verb":"create",'
     '"user":{"username":"bob"},"objectRef":{"resource":"pods","subresource":"exec",'
     '"namespace":"prod","name":"db-0"},"requestURI":"/api/v1/namespaces/prod/pods/db-0/exec?command=sh",'
     '"responseStatus":{"code":403},"requestReceivedTimestamp":"2024-03-30T15:54:19Z"}',
     {"resource": "prod/pods/exec/db-0", "url.query": "command=sh", "event.outcome": "failure",
      "orchestrator.namespace": "prod"}),
    ("cloudtrail",
     '{"eventVersion":"1.08","eventTime":"2024-03-30T15:54:19Z","eventSource":"signin.amazonaws.com",'
     '"eventName":"ConsoleLogin","sourceIPAddress":"1.2.3.4","eventID":"e1",'
     '"userIdentity":{"type":"IAMUser","userName":"mallory","accountId":"1"},'
     '"responseElements":{"ConsoleLogin":"Failure"},"additionalEventData":{"MFAUsed":"No"}}',
     {"event.id": "e1", "event.action": "ConsoleLogin", "event.outcome": "failure",
      "user.name": "mallory", "aws.cloudtrail.mfa_used": "No", "cloud.provider": "aws"}),
    ("cloudtrail",
     '{"eventTime":"2024-03-30T15:54:19Z","eventSource":"s3.amazonaws.com","eventName":"GetObject",'
     '"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/i-1",'
     '"sessionContext":{"sessionIssuer":{"userName":"R"}}},"errorCode":"AccessDenied",'
     '"requestParameters":{"bucketName":"b","key":"k.csv"},"sourceIPAddress":"1.2.3.4"}',
     {"user.name": "R", "resource": "b/k.csv", "event.outcome": "failure"}),
]


@pytest.mark.parametrize(("fmt", "line", "expected"), CASES)
def test_parser_table(fmt: str, line: str, expected: dict, options: ParserOptions) -> None:
    event = build_parser(fmt, options).parse(line, "src", 7)
    assert event.line == 7 and event.source == "src" and event.dataset == fmt
    for name, value in expected.items():
        assert event.get(name) == value, name


@pytest.mark.parametrize(("fmt", "line", "fragment"), [
    ("combined", "garbage", "combined"),
    ("combined", '1.2.3.4 - - [99/Foo/2024:15:54:19 +0000] "GET / HTTP/1.1" 200 1', "timestamp"),
    ("syslog", "just words", "syslog"),
    ("json", "{not json", "JSON"),
    ("json", "[1, 2]", "object"),
    ("json", '{"ts": "tomorrow", "user": "x"}', "timestamp"),
    ("logfmt", "a=1", "logfmt"),
    ("k8s_audit", '{"apiVersion": "v1"}', "audit"),
    ("cloudtrail", '{"eventName": "X"}', "CloudTrail"),
    ("json", "", "JSON"),
])
def test_parser_errors_are_specific(fmt: str, line: str, fragment: str, options: ParserOptions) -> None:
    with pytest.raises(ParseError, match=fragment):
        build_parser(fmt, options).parse(line, "src", 1)


def test_syslog_year_is_closest_before_now_or_setting() -> None:
    line = "Dec 31 23:59:59 h sshd[1]: Connection closed by 1.2.3.4 port 1 [preauth]"
    jan = ParserOptions(now=datetime(2026, 1, 2, tzinfo=UTC))
    assert build_parser("syslog", jan).parse(line, "s", 1).timestamp.year == 2025
    fixed = ParserOptions(syslog_year=2019, now=NOW)
    assert build_parser("syslog", fixed).parse(line, "s", 1).timestamp.year == 2019


@pytest.mark.parametrize(("rel", "fmt"), [
    ("ssh/OpenSSH_2k.log", "syslog"),
    ("ssh/Linux_2k.log", "syslog"),
    ("web/apache_access_2015.log", "combined"),
    ("cloudtrail/ec2_proxy_s3_exfiltration_2020-09-14011940.json", "cloudtrail"),
])
def test_real_samples_detect_and_parse(rel: str, fmt: str, options: ParserOptions) -> None:
    path = str(real_file(rel))
    assert sniff_file(path, options) == fmt
    parser = build_parser(fmt, options)
    lines = [line for chunk in LineReader(path, fmt, 1000).chunks() for line in chunk.lines]
    parsed = 0
    for i, line in enumerate(lines, 1):
        try:
            parser.parse(line, path, i)
            parsed += 1
        except ParseError:
            pass
    assert len(lines) > 100
    assert parsed / len(lines) >= 0.99


def test_real_sshd_auth_lines_carry_who_and_where(options: ParserOptions) -> None:
    path = real_file("ssh/OpenSSH_2k.log")
    parser = build_parser("syslog", options)
    failed = [e for i, line in enumerate(path.read_text().splitlines(), 1)
              if (e := parser.parse(line, "s", i)).action == "ssh_login"]
    assert len(failed) > 500
    assert all(e.source_ip and e.user_name for e in failed)


def test_fail2ban_labelled_auth_lines_parse(options: ParserOptions) -> None:
    """The wide sample of real sshd/pam line variants: syslog lines among them parse."""
    import csv

    path = real_file("labelled-lines/fail2ban_labeled_lines.csv")
    parser = build_parser("syslog", options)
    lines = [row["log_line"] for row in csv.DictReader(path.open())
             if row["service_file"] in ("sshd", "pam-generic", "sshd-ddos")]
    headed = [line for line in lines if parser.sniff(line)]
    assert len(headed) > 20
    ok = sum(1 for line in headed if _parses(parser, line))
    assert ok / len(headed) >= 0.99


def _parses(parser, line: str) -> bool:
    try:
        parser.parse(line, "s", 1)
    except ParseError:
        return False
    return True


def test_whole_cloudtrail_records_file(tmp_path, options: ParserOptions) -> None:
    doc = ('{"Records": [{"eventTime": "2024-03-30T15:54:19Z", "eventSource": "s3.amazonaws.com",'
           ' "eventName": "ListBuckets", "userIdentity": {"userName": "a"}, "sourceIPAddress": "1.1.1.1"},'
           '\n {"eventTime": "2024-03-30T15:55:19Z", "eventSource": "s3.amazonaws.com",'
           ' "eventName": "GetObject", "userIdentity": {"userName": "b"}, "sourceIPAddress": "1.1.1.2"}]}')
    path = tmp_path / "trail.json"
    path.write_text(doc)
    assert sniff_file(str(path), options) == "cloudtrail"
    chunks = list(LineReader(str(path), "cloudtrail", 1000).chunks())
    events = [build_parser("cloudtrail", options).parse(line, str(path), i + 1)
              for i, line in enumerate(chunks[0].lines)]
    assert [e.user_name for e in events] == ["a", "b"]


def test_detect_format_prefers_the_format_that_parses(options: ParserOptions) -> None:
    assert detect_format(["a=1 b=2 c=3 user=x ts=2024-01-01T00:00:00Z"], options) == "logfmt"
    assert detect_format(["not a log line"], options) is None


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(list(PARSERS)), line=st.text(max_size=300))
def test_any_line_gives_exactly_one_event_or_violation(fmt: str, line: str) -> None:
    """Never an exception: every line is an event, a redacted event plus its violation, a
    violation with the line dropped, or (blank) nothing but a count."""
    checker = SourceChecker(load_profile(), build_parser(fmt, ParserOptions(now=NOW)), "s",
                            now=lambda: NOW)
    line = line.replace("\n", " ")
    event, violation = checker.check_line(line, 1)
    if not line.strip():  # a blank line is no record: counted, nothing else
        assert (event, violation, checker.scorecard.blank) == (None, None, 1)
        return
    assert event is not None or violation is not None
    if event is not None and violation is not None:
        assert violation.action == "redacted"
    if event is None:
        assert violation is not None and violation.action == "dropped"


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(list(PARSERS)),
       line=st.one_of(st.text(max_size=200),
                      st.from_regex(r'\{"[a-z@]{1,10}": ?("[^"]{0,20}"|\d{1,12}|null|\[\]|\{\})\}',
                                    fullmatch=True),
                      st.from_regex(r"[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \S{1,8} \S{1,10}: .{0,40}",
                                    fullmatch=True)))
def test_parsers_raise_only_parse_error(fmt: str, line: str) -> None:
    try:
        build_parser(fmt, ParserOptions(now=NOW)).parse(line, "s", 1)
    except ParseError:
        pass


def test_long_lines_cannot_stall_detection_or_parsing(tmp_path, options: ParserOptions) -> None:
    """#14: ten 32 KB request paths at a file's head and one 200 KB path (anyone who can put a
    long string in a log line could otherwise blind the monitor: the logfmt pattern backtracked
    quadratically on a long run of word characters with no '='). A run over them finishes, in a
    subprocess bounded far below the minutes it took, and every line is accounted for."""
    import subprocess
    import sys
    from pathlib import Path

    def request(n: int, k: int) -> str:
        return (f'203.0.113.{k} - - [25/Nov/2026:10:00:{k:02d} +0000] "GET /{"a" * n} HTTP/1.1" 404 12 "-" '
                f'"curl/8.5"\n')

    log = tmp_path / "access.log"
    log.write_text("".join(request(32_000, k) for k in range(10)) + request(200_000, 10) + request(10, 11))
    assert detect_format(log.read_text().splitlines()[:20], options) == "combined"
    logfmt = build_parser("logfmt", options)
    assert not logfmt.sniff("x" * 200_000 + " a=1 b=2")  # two pairs: not logfmt, and quickly so
    event = logfmt.parse("y" * 200_000 + " user=bob action=login outcome=success ts=2026-11-25T10:00:00Z", "s", 1)
    assert (event.user_name, event.action, event.outcome) == ("bob", "login", "success")
    out = tmp_path / "violations.jsonl"
    proc = subprocess.run([sys.executable, "-m", "logwarden", "run", "--input", str(log), "--no-model",
                           "--violations", str(out)], capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    import re

    # the scorecard: all 12 lines read as combined, 11 events; the 200 KB line (over
    # LOGWARDEN_MAX_LINE) is one too_long violation, never parsed, with a short excerpt
    assert re.search(rf"^{re.escape(str(log))}\s+combined\s+12\s+11\s+1\s+0\s+91\.7%", proc.stdout, re.M), \
        proc.stdout
    [violation] = [orjson.loads(x) for x in out.read_text().splitlines()]
    assert violation["reason"] == "too_long" and violation["line"] == 11 and len(violation["excerpt"]) <= 160
    assert f"{len(request(200_000, 10)) - 1:,} characters" in violation["detail"]
    assert "LOGWARDEN_MAX_LINE" in violation["detail"]


def _ordinary(fmt: str, k: int, pad: int = 0) -> str:
    """A line of each format; ``pad``: that many more characters in a field anyone can fill."""
    t, x = f"2026-11-25T10:{k // 60 % 60:02d}:{k % 60:02d}Z", "a" * pad
    return {
        "combined": f'203.0.113.{k % 250} - - [25/Nov/2026:10:{k // 60 % 60:02d}:{k % 60:02d} +0000] '
                    f'"GET /p/{k}{x} HTTP/1.1" 200 12 "-" "curl/8.5"',
        "syslog": f"Nov 25 10:{k // 60 % 60:02d}:{k % 60:02d} bastion sshd[{k}]: Failed password for bob{x} from "
                  f"203.0.113.{k % 250} port 22 ssh2",
        "json": orjson.dumps({"@timestamp": t, "user": "bob", "src_ip": "10.0.0.1", "action": "read",
                              "outcome": "success", "path": f"/api/{k}{x}"}).decode(),
        "logfmt": f"ts={t} user=bob src_ip=10.0.0.1 action=read outcome=success path=/api/{k}{x}",
        "k8s_audit": orjson.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"id-{k}",
                                   "verb": "get", "user": {"username": "bob"}, "sourceIPs": ["10.0.0.1"],
                                   "requestURI": f"/api/v1/pods/{k}{x}", "requestReceivedTimestamp": t,
                                   "responseStatus": {"code": 200}}).decode(),
        "cloudtrail": orjson.dumps({"eventVersion": "1.08", "eventTime": t, "eventSource": "s3.amazonaws.com",
                                    "eventName": "GetObject", "awsRegion": "eu-west-1",
                                    "sourceIPAddress": "10.0.0.1", "userAgent": f"aws-cli/2.15{x}",
                                    "eventID": f"e-{k}", "userIdentity": {"type": "IAMUser", "userName": "bob"}}
                                   ).decode(),
    }[fmt]


@pytest.mark.parametrize("fmt", ["combined", "syslog", "json", "logfmt", "k8s_audit", "cloudtrail"])
@pytest.mark.parametrize("detected", [True, False])
def test_a_file_headed_by_huge_lines_reads_at_a_tenth_of_the_speed_at_least(tmp_path, fmt: str,
                                                                            detected: bool) -> None:
    """#14: ten 200 KB lines at a file's head, in every format, auto-detected or not: the file is
    read (detected, parsed, checked) at no less than a tenth of the speed of ordinary lines, the
    long lines are ``too_long`` violations and every other line an event of the right format."""
    import time

    def read(lines: list[str]) -> tuple[float, list]:
        path = tmp_path / f"{fmt}-{len(lines[0])}.log"
        path.write_text("\n".join(lines) + "\n")
        start = time.perf_counter()
        found = sniff_file(str(path), ParserOptions()) if detected else fmt
        checker = SourceChecker(load_profile(), build_parser(found, ParserOptions()), str(path))
        out = [x for chunk in LineReader(str(path), found, 1000).chunks()
               for x in checker.check_lines(chunk.lines, chunk.first_line)]
        return time.perf_counter() - start, out

    ordinary = [_ordinary(fmt, k) for k in range(2000)]
    plain, _ = read([_ordinary(fmt, k) for k in range(2000, 2010)] + ordinary)
    headed, out = read([_ordinary(fmt, k, pad=200_000) for k in range(10)] + ordinary)
    assert headed < 10 * plain + 0.05, (headed, plain)
    reasons = [getattr(x, "reason", None) for x in out if not hasattr(x, "rule_id")]
    assert reasons[:10] == ["too_long"] * 10 and reasons[10:] == [None] * 2000
    assert {x.dataset for x in out if hasattr(x, "dataset") and not hasattr(x, "reason")} == {fmt}


def test_every_single_event_kubernetes_audit_shape_parses_and_is_detected(options: ParserOptions) -> None:
    """#14: v1 events, v1beta1 events with only a top-level ``timestamp`` (early API servers), and
    events forwarded without ``apiVersion`` (kind Event with auditID, verb and user) give the same
    event; detection picks k8s_audit for each, and a rule matches all alike."""
    from pathlib import Path

    from logwarden.rules.loader import load_rules

    common = ('"kind":"Event","auditID":"a9","verb":"create","user":{"username":"bob","groups":["dev"]},'
              '"sourceIPs":["10.0.0.8"],"objectRef":{"resource":"pods","subresource":"exec","namespace":"payments",'
              '"name":"db-0"},"requestURI":"/api/v1/namespaces/payments/pods/db-0/exec?command=sh",'
              '"responseStatus":{"code":101}')
    shapes = {
        "v1": '{"apiVersion":"audit.k8s.io/v1",' + common + ',"requestReceivedTimestamp":"2024-03-30T15:54:19Z"}',
        "v1beta1": '{"apiVersion":"audit.k8s.io/v1beta1",' + common + ',"timestamp":"2024-03-30T15:54:19Z"}',
        "none": "{" + common + ',"stageTimestamp":"2024-03-30T15:54:19Z"}',
    }
    parser = build_parser("k8s_audit", options)
    rule = next(r for r in load_rules([Path(__file__).resolve().parents[1] / "rules" / "default.yaml"]).rules
                if r.meta.id == "k8s-exec-sensitive-namespace")
    seen = set()
    for name, line in shapes.items():
        assert detect_format([line], options) == "k8s_audit", name
        e = parser.parse(line, "audit.log", 1)
        seen.add((e.timestamp, e.user_name, e.action, e.resource, e.event_id, e.outcome))
        assert rule.relevant(e), name
    assert len(seen) == 1 and seen.pop()[1:4] == ("bob", "create", "payments/pods/exec/db-0")
    no_user = "{" + common.replace('"user":{"username":"bob","groups":["dev"]},', "") + "}"
    with pytest.raises(ParseError, match="not a Kubernetes audit event"):
        parser.parse(no_user, "audit.log", 1)


def test_every_kubernetes_audit_shape_in_one_file_parses_with_nothing_leaked(tmp_path) -> None:
    """#14's acceptance: a pod creation carrying a secret volume, an ``EventList`` of three events,
    a ``v1beta1`` event and an event without ``apiVersion``, in one file: detected, all parse,
    none is a violation, every EventList item is its own event (line 2, items 1-3) that rules see
    alike, and a token planted in an annotation is still redacted, in an item too."""
    from logwarden.rules import RuleIndex
    from logwarden.rules.loader import default_rule_files, load_rules

    token = "ghp_" + "Z8k2pQ7rT4vX9mB3nL6wS1yC5hF0jD2gA7eK"

    def event(n: int, **more: object) -> dict:
        return {"level": "RequestResponse", "auditID": f"a-{n}", "stage": "ResponseComplete", "verb": "create",
                "requestURI": "/api/v1/namespaces/payments/pods", "user": {"username": "bob", "groups": ["dev"]},
                "sourceIPs": ["10.0.0.8"], "objectRef": {"resource": "pods", "namespace": "payments",
                                                        "name": f"web-{n}", "apiVersion": "v1"},
                "responseStatus": {"code": 201}, "requestReceivedTimestamp": f"2026-11-25T10:00:0{n}Z", **more}

    pod = event(0, apiVersion="audit.k8s.io/v1", kind="Event", requestObject={
        "kind": "Pod", "spec": {"volumes": [{"name": "default-token-x7k2p", "secret": {
            "defaultMode": 420, "secretName": "default-token-x7k2p"}}]}})
    items = [event(1), event(2, annotations={"note": f"deploy with {token}"}), event(3)]
    beta = {k: v for k, v in event(4, apiVersion="audit.k8s.io/v1beta1", kind="Event").items()
            if k != "requestReceivedTimestamp"} | {"timestamp": "2026-11-25T10:00:04Z"}
    bare = event(5, kind="Event")  # no apiVersion
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
    lines = [orjson.dumps(doc).decode() for doc in (pod, batch, beta, bare)] + [""]
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n")  # and a blank line at its end, as many real files have
    fmt = sniff_file(str(path), ParserOptions())
    assert fmt == "k8s_audit"
    checker = SourceChecker(load_profile(), build_parser(fmt, ParserOptions()), str(path))
    out = [x for chunk in LineReader(str(path), fmt, 1000).chunks()
           for x in checker.check_lines(chunk.lines, chunk.first_line)]
    violations = [x for x in out if hasattr(x, "reason")]
    events = [x for x in out if not hasattr(x, "reason") and not hasattr(x, "rule_id")]
    assert [v.reason for v in violations] == ["secret"] and violations[0].item == 2  # redacted, kept
    assert violations[0].line == 2 and violations[0].action == "redacted" and token not in violations[0].excerpt
    assert [(e.line, e.ref.rpartition(":")[2], e.event_id) for e in events] == [
        (1, "1", "a-0"), (2, "2#1", "a-1"), (2, "2#2", "a-2"), (2, "2#3", "a-3"), (3, "3", "a-4"), (4, "4", "a-5")]
    assert all(token not in orjson.dumps(e.to_dict()).decode() for e in events)
    assert {(e.user_name, e.action, e.resource.rsplit("-", 1)[0]) for e in events} == {
        ("bob", "create", "payments/pods/web")}
    card = checker.scorecard
    assert (card.lines, card.blank, card.items, card.events, card.compliant, card.redacted) == (5, 1, 2, 6, 5, 1)
    assert card.compliance_rate == 5 / 6
    # the rules route the items as they route single events
    index = RuleIndex(load_rules(default_rule_files()).enabled())
    keys = [sorted(k for k, _ in index.route([e])) for e in events]
    assert keys[1] == keys[2] == keys[3] == keys[4] and keys[1]


def test_cloudtrail_request_and_response_fields_are_kept_by_their_paths(options: ParserOptions) -> None:
    """What Sigma's CloudTrail rules look into: requestParameters.* and responseElements.*."""
    record = {"eventVersion": "1.08", "eventTime": "2026-11-29T10:00:00Z", "eventSource": "ecs.amazonaws.com",
              "eventName": "RegisterTaskDefinition", "userIdentity": {"type": "IAMUser", "userName": "dev"},
              "requestParameters": {"containerDefinitions": [
                  {"name": "a", "command": ["sh", "-c", "curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]},
                  {"name": "b"}],
                  "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}'},
              "responseElements": {"publiclyAccessible": True}}
    event = build_parser("cloudtrail", options).parse(json.dumps(record), "trail.json", 1)
    prefix = "aws.cloudtrail.request_parameters"
    assert event.get(f"{prefix}.containerDefinitions.command")[-1].endswith("CREDENTIALS_RELATIVE_URI")
    assert event.get(f"{prefix}.containerDefinitions.name") == ["a", "b"]
    assert '"s3:GetObject"' in event.get(prefix)  # the whole request, its values unescaped
    assert event.get("aws.cloudtrail.response_elements.publiclyAccessible") is True


# -- reading a batch as columns (``parse_columns``) against ``parse``, line by line ----------------

_CLF_PART = st.sampled_from([
    '10.0.0.1', '2001:db8::1', '-', 'bob', '"alice smith"', '[30/Mar/2024:15:54:19 +0000]',
    '[30/Mar/2024:15:54:19]', '[31/Feb/2024:15:54:19 +0000]', '[30/Mar/2024:15:54:19 +0530]',
    '"GET /a?b=1 HTTP/1.1"', '"GET /x HTTP/1.1"', '"-"', '""', '"\\x16\\x03\\x01"', '"GET /q\\"x HTTP/1.1"',
    '200', '404', '-', '0', '99999999999999999999', '"curl/8.0"', '"Mozilla/5.0 (X11)"', '"-"', 'junk',
])


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(
    st.lists(_CLF_PART, min_size=1, max_size=10).map(" ".join),
    st.builds(lambda ip, user, t, req, status, size, tail: f'{ip} - {user} {t} {req} {status} {size}{tail}',
              st.sampled_from(["10.0.0.1", "203.0.113.9", "::1"]), st.sampled_from(["-", "bob", '"a b"']),
              st.sampled_from(["[30/Mar/2024:15:54:19 +0000]", "[30/Mar/2024:15:54:20 -0700]",
                               "[30/Mar/2024:15:54:19]", "[99/Mar/2024:15:54:19 +0000]"]),
              st.sampled_from(['"GET /a?b=1 HTTP/1.1"', '"POST /login HTTP/1.0"', '"-"', '"\\x16\\x03"', '"/"']),
              st.sampled_from(["200", "401", "-"]), st.sampled_from(["512", "-", "0"]),
              st.sampled_from(["", ' "-" "curl/8.0"', ' "https://r/" "-"', ' "a\\"b" "c"',
                               ' "-" "curl/8.0" 0.012 "10.1.1.1"', ' "-" "x" "y" "z"', " 0.5", ' "-"'])),
    st.text(max_size=60).map(lambda s: s.replace("\n", " "))), max_size=30), first=st.integers(1, 10_000))
def test_combined_columns_read_every_line_as_parse_does(lines: list[str], first: int) -> None:
    """Each row it reads is the very event ``parse`` gives; a line it leaves is one ``parse``
    refuses or one with a backslash (read by its slower pattern)."""
    _columns_as_parse("combined", lines, first, left=lambda line: "\\" in line)


def _columns_as_parse(fmt: str, lines: list[str], first: int, left: Callable[[str], bool] = lambda _: False) -> None:
    """Each row ``parse_columns`` reads is the very event ``parse`` gives; a line it leaves is one
    ``parse`` refuses or one ``left`` says it may leave."""
    parser = build_parser(fmt, ParserOptions(now=NOW))
    columns = parser.parse_columns(lines, "in.log", first)  # type: ignore[attr-defined]
    assert len(columns.ok) == len(lines) and all(len(c) == len(lines) for c in columns.values)
    for row, line in enumerate(lines):
        try:
            expected = parser.parse(line, "in.log", first + row)
        except ParseError:  # TimestampError included
            assert not columns.ok[row]
            continue
        assert columns.event(row) == expected if columns.ok[row] else left(line), line


_CLF_ZONES = st.sampled_from(["", " +0000", " +0530", " -0700", " +1400", " +00", " x0000", " -0000 extra"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 23), st.integers(0, 61), st.integers(0, 61),
                          st.sampled_from([":", "x"]), st.sampled_from(["{:02d}", "{: 2d}", "{:d}"]), _CLF_ZONES),
                min_size=1, max_size=60))
def test_cached_clf_times_are_the_whole_parse(stamps: list[tuple[int, int, int, int, str, str, str]]) -> None:
    """``parse_clf`` (an hour parsed once, then its minutes and seconds added) and the batch's
    ``parse_clf_many`` read each text as the whole parse does, in any order of hours and zones,
    and refuse what it refuses: a minute of 60, a zone of three digits, a seconds field of one."""
    texts = [f"{28 + day:02d}/Feb/2024:{hour:02d}:{minute:02d}{sep}{form.format(second)}{zone}"
             for day, hour, minute, second, sep, form, zone in stamps]

    def whole(text: str) -> datetime | None:
        try:
            return timeutil._parse_clf(text)
        except TimestampError:
            return None

    def cached(text: str) -> datetime | None:
        try:
            return timeutil.parse_clf(text)
        except TimestampError:
            return None

    expected = [whole(t) for t in texts]
    assert [cached(t) for t in texts] == expected
    assert [(x, None if x is None else x.utcoffset()) for x in map(timeutil.parse_clf_many(texts).get, texts)] == \
        [(x, None if x is None else x.utcoffset()) for x in expected]


def test_combined_columns_read_the_real_web_logs_as_parse_does(options: ParserOptions) -> None:
    parser = build_parser("combined", options)
    lines = real_file("web/apache_access_2015.log").read_text(encoding="utf-8", errors="replace").splitlines()
    read = 0
    for at in range(0, len(lines), 1000):
        columns = parser.parse_columns(lines[at:at + 1000], "web.log", at + 1)  # type: ignore[attr-defined]
        for row in (r for r, ok in enumerate(columns.ok) if ok):
            assert columns.event(row) == parser.parse(lines[at + row], "web.log", at + row + 1)
            read += 1
    assert read >= 0.99 * len(lines)  # nearly every line: the rest go to ``parse``


_JSON_KEYS = ["@timestamp", "timestamp", "ts", "user", "username", "user.name", "src_ip", "ip", "action",
              "event", "outcome", "status", "result", "path", "url", "resource", "bytes", "size", "method",
              "http_method", "status_code", "query", "host", "id", "category", "user_agent", "msg",
              "cloud.account.id", "db.statement", "note"]
_JSON_VALUES = st.one_of(
    st.just(""), st.sampled_from(["2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123+02:00", "2026-11-28 10:00:00",
                     "2026-13-45T99:00:00Z", "1764324000", "1764324000123", "yesterday", "", " ", "-",
                     "GET", "post", "DELETE-ALL", "/api/v1/items?page=2", "/health", "/", "db.users", "success",
                     "FAILED", "ok", "denied", "unknown", "200", "404", "999", "alice", "10.0.0.1", "x" * 3]),
    st.integers(-5, 2**64), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.lists(st.sampled_from(["a", "/b", 1]), max_size=2),
    st.dictionaries(st.sampled_from(["name", "ip", "original"]), st.sampled_from(["bob", "10.1.1.1", 3]),
                    max_size=2))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(_JSON_KEYS), _JSON_VALUES, max_size=10).map(json.dumps),
    st.sampled_from(['{"user": "bob"', '[1, 2]', '"text"', "12", "", "{}", "not json at all"])),
    max_size=25), first=st.integers(1, 10_000), shared=st.booleans())
def test_json_columns_read_every_line_as_parse_does(lines: list[str], first: int, shared: bool) -> None:
    """Each row it reads is the very event ``parse`` gives, whatever the keys, aliases, types,
    nested objects and empty values; a line it leaves is one ``parse`` refuses."""
    if shared and lines:  # the usual batch: every line with one key set
        lines = [lines[0]] * len(lines)
    _columns_as_parse("json", lines, first)


def test_nested_ecs_objects_are_read_by_their_dotted_names(options: ParserOptions) -> None:
    """Elastic's own form of a document nests its fields (``{"source": {"ip": ...}}``): read as
    the dotted names, whether or not a top-level key is also an alias, with the ECS extras
    nested too; deeper than ``FLAT_DEPTH`` objects are left whole, and where a dotted key and a
    nested one give one name the first in the document wins. As columns, the same events."""
    parser = build_parser("json", options)
    lines = [
        '{"@timestamp":"2024-03-30T15:54:19Z","source":{"ip":"9.9.9.9"},"action":"login","cloud":{"provider":"aws"}}',
        '{"@timestamp":"2024-03-30T15:54:19Z","user":{"name":"al"},"http":{"request":{"method":"post"},'
        '"response":{"status_code":404}},"url":{"path":"/a","query":"b=1"},"event":{"outcome":"failure"}}',
        '{"@timestamp":"2024-03-30T15:54:19Z","user.name":"first","user":{"name":"second"},'
        '"a":{"b":{"c":{"d":{"e":1}}}},"host":{"name":{"x":1}}}',
        '{"@timestamp":"2024-03-30T15:54:19Z","user":"bob","source":{"ip":{"v4":"1.1.1.1"}}}',
    ]
    events = [parser.parse(line, "gw.jsonl", n) for n, line in enumerate(lines, 1)]
    assert (events[0].source_ip, events[0].action, events[0].extra) == ("9.9.9.9", "login", {"cloud.provider": "aws"})
    assert (events[1].user_name, events[1].http_method, events[1].status_code, events[1].outcome,
            events[1].url_path, events[1].url_query) == ("al", "POST", 404, "failure", "/a", "b=1")
    assert events[2].user_name == "first" and events[2].host_name is None  # an object is no host name
    assert (events[3].user_name, events[3].source_ip) == ("bob", None)  # source.ip.v4: no alias reads it
    from logwarden.parsers.mapping import FLAT_DEPTH, flatten

    assert flatten({"a": {"b": {"c": {"d": {"e": 1}}}}}) == {"a.b.c.d": {"e": 1}} and FLAT_DEPTH == 3
    columns = parser.parse_columns(lines, "gw.jsonl", 1)  # type: ignore[attr-defined]
    assert columns.ok == [True] * 4 and [columns.event(r) for r in range(4)] == events


def test_lines_that_differ_only_in_their_own_optional_fields_share_one_plan(options: ParserOptions) -> None:
    """A gateway that adds a trace id, an error or a tenant to some lines has a key set per line
    or nearly: they are read as the few sets of the keys a plan reads, not one plan per line
    (which the plans' bound turned into a new plan for every line, 5x slower)."""
    parser = build_parser("json", options)
    optional = ["trace_id", "span_id", "error", "retry", "tenant", "zone", "feature", "session"]
    lines = [orjson.dumps({"@timestamp": "2024-03-30T15:54:19Z", "user": f"u{n % 7}", "src_ip": "10.0.0.1",
                           "action": "read", **{k: n for b, k in enumerate(optional) if n >> b & 1}}).decode()
             for n in range(256)]  # 256 key sets
    columns = parser.parse_columns(lines, "gw.jsonl", 1)  # type: ignore[attr-defined]
    assert columns.ok == [True] * 256
    assert [columns.event(r) for r in range(256)] == [parser.parse(line, "gw.jsonl", n) for n, line in
                                                      enumerate(lines, 1)]
    assert len(parser._aliases._plans) == 1  # type: ignore[attr-defined]  # one plan for them all


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.lists(st.tuples(st.sampled_from(_JSON_KEYS), st.sampled_from(
    ["", "2026-11-28T10:00:00Z", "1764324000", "bad-time", "GET", "/api/v1/x?y=1", "failed", "ok", "200", "99",
     "alice", '"two words"', '"a \\"quoted\\" b"', "10.0.0.1", "x=y"])), max_size=8).map(
    lambda pairs: " ".join(f"{k}={v}" for k, v in pairs)), max_size=20), first=st.integers(1, 10_000))
def test_logfmt_columns_read_every_line_as_parse_does(lines: list[str], first: int) -> None:
    _columns_as_parse("logfmt", lines, first)


def test_json_columns_read_the_simulated_sources_as_parse_does(options: ParserOptions, tmp_path) -> None:
    from logwarden.simulate import simulate

    simulate(tmp_path, days=1, seed=3, end=datetime(2026, 11, 25, tzinfo=UTC), org="acme")
    parser = build_parser("json", options)
    read = 0
    for path in (tmp_path / "app" / "api.jsonl", tmp_path / "db" / "queries.jsonl"):
        lines = path.read_text().splitlines()
        columns = parser.parse_columns(lines, path.name, 1)  # type: ignore[attr-defined]
        for row, line in enumerate(lines):
            try:
                expected = parser.parse(line, path.name, row + 1)
            except ParseError:
                assert not columns.ok[row]
                continue
            assert columns.ok[row] and columns.event(row) == expected
            read += 1
    assert read > 1000


def test_a_quote_left_open_costs_the_batch_nothing_but_its_own_line(options: ParserOptions) -> None:
    """In the batch joined by line breaks, an unterminated quote could run into the next line:
    the batch is then read line by line, and every other line is still read as columns."""
    good = '10.0.0.{k} - - [30/Mar/2024:15:54:1{k} +0000] "GET /{k} HTTP/1.1" 200 {k} "-" "curl/8.0" 0.012'
    from logwarden.parsers.combined import _BATCH

    lines = [good.format(k=k) for k in range(3)] + ['10.0.0.9 - - [30/Mar/2024:15:54:19 +0000] "GET /open',
                                                    'x" 200 5'] + [good.format(k=k) for k in range(3, 6)]
    assert len(_BATCH.findall("\n".join(lines))) < len(lines)  # the open quote ran into the next line
    parser = build_parser("combined", options)
    columns = parser.parse_columns(lines, "access.log", 1)  # type: ignore[attr-defined]
    assert columns.ok == [True] * 3 + [False, False] + [True] * 3
    for row in (0, 1, 2, 5, 6, 7):
        assert columns.event(row) == parser.parse(lines[row], "access.log", row + 1)
        assert columns.event(row).user_agent == "curl/8.0"  # the fields after the agent are left


def _readline_lines(path: Path) -> list[str]:
    """What a file's lines were when read with ``readline`` (text, universal newlines kept):
    only a line feed ends a line, and the last line counts without one."""
    out, pending = [], ""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for line in iter(f.readline, ""):
            if not line.endswith("\n"):
                pending += line
                continue
            out.append((pending + line).rstrip("\r\n"))
            pending = ""
    return out + ([pending.rstrip("\r")] if pending else [])


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from([b"abc", b"\n", b"\r", b"\r\n", b"\xe2\x82", b"\xac", b"\xff", "é".encode(),
                                        b" ", b"{}", b"\n\n"]), max_size=60),
       block=st.integers(1, 40), size=st.integers(1, 7), cut=st.integers(0, 10))
def test_a_file_reads_in_blocks_as_it_did_line_by_line(tmp_path_factory: Any, pieces: list[bytes], block: int,
                                                        size: int, cut: int) -> None:
    """Blocks of bytes split at line feeds give the lines a ``readline`` loop gave, whatever the
    carriage returns, bad UTF-8 and block edges; and a reader resumed from (offset, line) after
    any chunk reads the rest."""
    path = tmp_path_factory.mktemp("blocks") / "in.log"
    path.write_bytes(b"".join(pieces))
    expected = _readline_lines(path)
    reader = LineReader(str(path), "json", size)
    reader.BLOCK = block
    got, state = [], None
    for k, chunk in enumerate(reader.chunks()):
        assert chunk.first_line == len(got) + 1
        got += chunk.lines
        if k == cut:
            state = (reader.offset, reader.lineno)
    reader.close()
    assert got == expected
    if state is not None:
        again = LineReader(str(path), "json", size, resume=state)
        again.BLOCK = block
        rest = [line for chunk in again.chunks() for line in chunk.lines]
        again.close()
        assert got[:state[1]] + rest == expected


_NOWS = [datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2024, 2, 28, 0, 30, tzinfo=UTC),
         datetime(2024, 2, 28, 22, 15, tzinfo=UTC), datetime(2026, 6, 15, 12, 7, tzinfo=UTC),
         datetime(2027, 1, 1, 0, 5, tzinfo=UTC)]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@settings(max_examples=80, deadline=None)
@example([(3, 1, 0, 5, 0), (3, 1, 0, 15, 0)])  # tomorrow 12:05 is this year's, tomorrow 12:15 last year's
@example([(4, 0, 0, 0, 0), (0, 0, 1, 0, 0)])  # Jan 1 00:00 is 2027's on Jan 1 2027, 2026's the day before
@given(st.lists(st.tuples(st.integers(0, len(_NOWS) - 1), st.integers(-2, 3), st.integers(-1, 1),
                          st.sampled_from([0, 5, 7, 8, 15, 59, 60]), st.sampled_from([0, 30, 59, 60])),
                min_size=1, max_size=40))
def test_syslog_times_from_remembered_hours_are_the_whole_parse(lines: list[tuple[int, int, int, int, int]]) -> None:
    """One parser over many lines (its hours remembered, today's date changing under it, as a
    long run's does) gives each line the time, or the error, that a new parser gives it: around
    now (tomorrow's date is this year's or last year's by its time of day), Feb 29, a second 60."""
    kept = build_parser("syslog", ParserOptions(now=_NOWS[0]))
    for k, days, hours, minute, second in lines:
        now = _NOWS[k]
        at = now + timedelta(days=min(days, 2), hours=hours)
        month, day = (2, 29) if days == 3 else (at.month, at.day)  # Feb 29: a leap year's, or none
        line = (f"{_MONTHS[month - 1]} {day:2d} {at.hour:02d}:{minute:02d}:{second:02d} h sshd[1]: "
                "Connection closed by 1.2.3.4 port 1")
        kept._now = now  # type: ignore[attr-defined]  # the clock of a run that goes on for days
        fresh = build_parser("syslog", ParserOptions(now=now))
        try:
            expected = fresh.parse(line, "s", 1).timestamp
        except TimestampError:
            with pytest.raises(TimestampError):
                kept.parse(line, "s", 1)
            continue
        assert kept.parse(line, "s", 1).timestamp == expected, (line, now)

"""Slack delivery with the real slack_sdk client against a local server that speaks Slack's Web
API and webhook: updates instead of floods, retries, outages, escaping, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis

from logwarden.alerts import Alert
from logwarden.incidents.backend import MemoryBackend
from logwarden.incidents.dispatch import Dispatcher, DispatchPolicy
from logwarden.incidents.model import Incident
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentStore
from logwarden.notify.slack import SlackBot, SlackWebhook, build_slack_blocks
from tests.fakes import TOKEN, WEBHOOK_PATH, FakeSlack, redis_prefix, redis_url, slack  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


def alert(aid: str = "a1", rev: int = 0, count: int = 10, entity: str = "203.0.113.5",
          rule: str = "ssh-bruteforce", severity: str = "high") -> Alert:
    return Alert(aid, rule, severity, entity, T0, T0 + timedelta(minutes=1), count, f"{count} failed logins",
                 ["auth.log:17"], ["nist-800-53:AC-7"], rev, "Failed SSH logins")


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def bot(fake: FakeSlack, token: str = TOKEN, timeout: float = 5) -> SlackBot:
    return SlackBot(token, "#security", fake.api_url, timeout)


def dispatcher(store: IncidentStore, notifier: object, sleeps: Sleeps | None = None, **policy: object) -> Dispatcher:
    policy_ = DispatchPolicy(min_interval=0, **policy)  # type: ignore[arg-type]
    return Dispatcher(store, notifier, policy_, sleep=sleeps if sleeps is not None else Sleeps())  # type: ignore[arg-type]


GOLDEN_INCIDENT = Incident(
    id="INC-0123456789", fingerprint="web-login-bruteforce|<!channel>", rule_id="web-login-bruteforce",
    severity="high", entity="<!channel>", description="Refused web logins from one address",
    summary="12 events on <https://evil.example|click here> & more", tags=["pci-dss-4.0:10.2.1.4"],
    first_seen="2026-11-25T10:00:00Z", last_seen="2026-11-25T10:01:00Z", count=12, created_at=0, updated_at=0,
    evidence=["access.log:42"])

GOLDEN_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text",
                                "text": ":large_orange_circle: HIGH · web-login-bruteforce · OPEN", "emoji": True}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Refused web logins from one address*\n"
                                 "12 events on &lt;https://evil.example|click here&gt; &amp; more"}},
    {"type": "section", "fields": [
        {"type": "mrkdwn", "text": "*Principal*\n`&lt;!channel&gt;`"},
        {"type": "mrkdwn", "text": "*Count*\n12"},
        {"type": "mrkdwn", "text": "*First seen*\n2026-11-25T10:00:00Z"},
        {"type": "mrkdwn", "text": "*Last seen*\n2026-11-25T10:01:00Z"}]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Evidence* (redacted)\n• `access.log:42`"}},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": (
        "Incident `INC-0123456789` · Controls: pci-dss-4.0:10.2.1.4 · "
        "Acknowledge: `logwarden incidents ack INC-0123456789 --by <you>`")}]},
]


def test_block_kit_message_golden_and_escaped() -> None:
    msg = build_slack_blocks(GOLDEN_INCIDENT)
    assert msg["blocks"] == GOLDEN_BLOCKS
    rendered = orjson.dumps(msg).decode()
    assert "<!channel>" not in rendered and "<https://evil" not in rendered
    acked = Incident(**{**GOLDEN_INCIDENT.__dict__, "state": "acknowledged",
                        "history": [{"at": "2026-11-25T10:05:00Z", "by": "alice", "action": "acknowledged"}]})
    assert "ACKNOWLEDGED" in msg_text(build_slack_blocks(acked)) and "Acknowledged by alice" in msg_text(
        build_slack_blocks(acked))


def msg_text(msg: dict) -> str:
    return orjson.dumps(msg).decode()


def test_a_burst_of_1000_alerts_is_one_message_and_updates(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    d = dispatcher(store, bot(slack))
    for batch in range(10):
        store.apply([alert(rev=batch * 100 + k, count=batch * 100 + k + 1) for k in range(100)])
        d.run_once()
    assert len(slack.posts()) == 1
    updates = slack.ok_calls("chat.update")
    assert 1 <= len(updates) <= 10 and "*Count*\\n1000" in orjson.dumps(updates[-1]["body"]).decode()
    assert store.outbox() == []


def test_follow_ups_update_the_message_and_reply_in_its_thread(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    d = dispatcher(store, bot(slack))
    [inc] = store.apply([alert()])
    d.run_once()
    store.ack(inc.id, "alice", "on it")
    d.run_once()
    [post] = slack.posts(thread=False)
    [reply] = slack.posts(thread=True)
    assert reply["body"]["thread_ts"] == post["ts"] and "Acknowledged by alice: on it" in reply["body"]["text"]
    assert "ACKNOWLEDGED" in orjson.dumps(slack.ok_calls("chat.update")[-1]["body"]).decode()
    assert post["auth"] == f"Bearer {TOKEN}"


def test_the_dispatcher_delivers_as_soon_as_it_is_nudged_not_at_its_next_pass(slack: FakeSlack) -> None:  # noqa: F811
    import threading

    store = IncidentStore(MemoryBackend())
    d = dispatcher(store, bot(slack))
    stop, nudge = threading.Event(), threading.Event()
    worker = threading.Thread(target=d.run_forever, args=(stop, 60.0, nudge), daemon=True)
    worker.start()
    try:
        time.sleep(0.3)  # its first pass found nothing; the next is a minute away
        store.apply([alert()])
        nudge.set()  # as the flow's incident sink does when incidents change
        deadline = time.monotonic() + 10
        while not slack.posts() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(slack.posts()) == 1 and time.monotonic() < deadline
    finally:
        stop.set()
        nudge.set()  # stops without waiting out the interval
        worker.join(timeout=5)
    assert not worker.is_alive()


def test_429_waits_for_retry_after(slack: FakeSlack) -> None:  # noqa: F811
    slack.script.extend(["429:7"])
    sleeps = Sleeps()
    store = IncidentStore(MemoryBackend())
    store.apply([alert()])
    dispatcher(store, bot(slack), sleeps).run_once()
    assert 7.0 in sleeps and len(slack.posts()) == 1 and store.outbox() == []


@pytest.mark.parametrize("failure", ["500", "503", "hang:3"])
def test_server_errors_and_timeouts_are_retried(slack: FakeSlack, failure: str) -> None:  # noqa: F811
    slack.script.extend([failure, failure])
    store = IncidentStore(MemoryBackend())
    store.apply([alert()])
    dispatcher(store, bot(slack, timeout=1)).run_once()
    tries = [c for c in slack.calls if c["method"] == "chat.postMessage"]
    assert len(slack.posts()) == 1 and len(tries) == 3 and store.outbox() == []
    # before each retry, the channel's history was read: the failed try had not been taken
    assert len(slack.ok_calls("conversations.history")) == 2


def test_an_answer_lost_to_a_timeout_does_not_post_twice(slack: FakeSlack) -> None:  # noqa: F811
    slack.script.extend(["slow:2"])  # Slack takes the message but answers after our timeout
    store = IncidentStore(MemoryBackend())
    [inc] = store.apply([alert()])
    dispatcher(store, bot(slack, timeout=1)).run_once()
    [post] = slack.posts()
    assert len([c for c in slack.calls if c["method"] == "chat.postMessage"]) == 1  # no second try
    assert store.get(inc.id).message == {"channel": "#security", "ts": post["ts"]}  # type: ignore[union-attr]
    assert store.outbox() == [] and store.get(inc.id).sending is None  # type: ignore[union-attr]


class _DiesAfterSlackAnswers(IncidentStore):
    """The process dies right after Slack accepted a first post, before recording it."""

    def mark_notified(self, iid: str, version: int, message: dict | None, sent_pending: int,
                      notified: bool) -> None:
        if message is not None:
            raise SystemExit("killed")
        super().mark_notified(iid, version, message, sent_pending, notified)


@pytest.mark.parametrize("many", [False, True], ids=["post", "digest"])
def test_a_crash_between_slacks_answer_and_our_record_does_not_post_twice(
        slack: FakeSlack, redis_url: str, redis_prefix: str, many: bool) -> None:  # noqa: F811
    backend = RedisBackend.from_url(redis_url, redis_prefix)
    n = 8 if many else 1
    IncidentStore(backend).apply([alert(f"a{k}", entity=f"203.0.113.{k}", severity="medium") for k in range(n)])
    with pytest.raises(SystemExit):
        dispatcher(_DiesAfterSlackAnswers(backend), bot(slack), digest_threshold=5, lease_ms=100).run_once()
    assert len(slack.posts()) == 1
    time.sleep(0.2)  # the dead process's delivery leases expire
    store = IncidentStore(backend)
    dispatcher(store, bot(slack), digest_threshold=5, lease_ms=100).run_once()
    [post] = slack.posts()  # found in the channel's history by its metadata: not posted again
    assert store.outbox() == []
    for inc in store.list():
        assert inc.message is not None and inc.message["ts"] == post["ts"] and inc.sending is None
        assert bool(inc.message.get("digest")) == many


class _DiesAfterSlackTakesAReply(IncidentStore):
    """The process dies right after Slack accepted a thread reply, before recording it."""

    def mark_notified(self, iid: str, version: int, message: dict | None, sent_pending: int,
                      notified: bool) -> None:
        if message is None and sent_pending:
            raise SystemExit("killed")
        super().mark_notified(iid, version, message, sent_pending, notified)


def test_a_crash_after_a_reply_does_not_reply_twice(slack: FakeSlack, redis_url: str,  # noqa: F811
                                                    redis_prefix: str) -> None:  # noqa: F811
    backend = RedisBackend.from_url(redis_url, redis_prefix)
    store = IncidentStore(backend)
    [inc] = store.apply([alert()])
    dispatcher(store, bot(slack), lease_ms=100).run_once()
    store.ack(inc.id, "alice", "on it")
    store.resolve(inc.id, "bob")
    with pytest.raises(SystemExit):
        dispatcher(_DiesAfterSlackTakesAReply(backend), bot(slack), lease_ms=100).run_once()
    assert len(slack.posts(thread=True)) == 2
    time.sleep(0.2)  # the dead process's lease expires
    dispatcher(store, bot(slack), lease_ms=100).run_once()
    texts = [p["body"]["text"] for p in slack.posts(thread=True)]
    assert len(texts) == 2 and "Acknowledged by alice" in texts[0] and "Resolved by bob" in texts[1]
    assert store.outbox() == [] and store.get(inc.id).sending is None  # type: ignore[union-attr]


def test_a_slack_outage_loses_nothing_and_sends_each_once(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    d = dispatcher(store, bot(slack), max_attempts=2)
    slack.down = True
    store.apply([alert("a1", entity="203.0.113.1"), alert("a2", entity="203.0.113.2")])
    for _ in range(3):  # passes during the outage
        d.run_once()
        store.apply([alert("a1", rev=1, count=20, entity="203.0.113.1")])
    assert slack.posts() == [] and len(store.outbox()) == 2
    slack.down = False
    d.run_once()
    d.run_once()
    assert sorted(p["body"]["text"].split(": ")[0] for p in slack.posts()) == [
        "[HIGH] ssh-bruteforce 203.0.113.1", "[HIGH] ssh-bruteforce 203.0.113.2"]
    assert store.outbox() == []


def test_rejected_token_is_recorded_not_retried_and_never_shown(slack: FakeSlack, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811,E501
    store = IncidentStore(MemoryBackend())
    [inc] = store.apply([alert()])
    report = dispatcher(store, bot(slack, token="xoxb-wrong-SECRETVALUE")).run_once()
    assert report.failed == 1 and store.outbox() == [] and len(slack.calls) == 1
    history = store.get(inc.id).history  # type: ignore[union-attr]
    assert history[-1]["action"] == "notification_failed" and "invalid_auth" in history[-1]["note"]
    out = capsys.readouterr()
    assert "SECRETVALUE" not in orjson.dumps(history).decode() + out.out + out.err


def test_many_incidents_at_once_become_one_digest(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    incidents = store.apply([alert(f"s{k}", entity=f"198.51.100.{k}", severity="medium") for k in range(1000)])
    d = dispatcher(store, bot(slack), digest_threshold=5)
    d.run_once()
    d.run_once()  # a pass takes up to 500 from the outbox: two digests, not a thousand posts
    digests = slack.posts()
    assert [p["body"]["text"] for p in digests] == ["500 new medium incidents", "500 new medium incidents"]
    body = digests[0]["body"]["blocks"][1]["text"]["text"]
    listed, more = body.count("• "), int(body.rsplit("and ", 1)[1].split()[0])
    assert listed + more == 500 and len(body) <= 3000 and store.outbox() == []
    store.resolve(incidents[3].id, "bob")
    d.run_once()
    [reply] = slack.posts(thread=True)
    assert reply["body"]["thread_ts"] == digests[0]["ts"]  # in the thread of the digest that named it
    assert "Resolved by bob" in reply["body"]["text"] and incidents[3].id in reply["body"]["text"]


def test_min_severity_and_routing(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    store.apply([alert("l1", severity="low", entity="x"), alert("c1", rule="cloudtrail-logging-disabled",
                                                              severity="critical", entity="mallory")])
    dispatcher(store, bot(slack), min_severity="medium", routes={"cloudtrail-*": "#cloud-sec"}).run_once()
    [post] = slack.posts()
    assert post["body"]["channel"] == "#cloud-sec" and "mallory" in post["body"]["text"]
    assert store.outbox() == []


def test_webhook_follow_ups_are_new_messages_naming_the_incident(slack: FakeSlack) -> None:  # noqa: F811
    store = IncidentStore(MemoryBackend())
    d = dispatcher(store, SlackWebhook(slack.webhook_url))
    [inc] = store.apply([alert()])
    d.run_once()
    store.apply([alert(rev=1, count=50)])  # a count update: a webhook cannot edit, so it stays quiet
    d.run_once()
    store.ack(inc.id, "alice")
    d.run_once()
    sent = [c for c in slack.calls if c["method"] == "webhook" and c["ok"]]
    assert len(sent) == 2 and inc.id in sent[1]["body"]["text"] and "Acknowledged by alice" in sent[1]["body"]["text"]
    slack.script.extend(["429:3"])
    store.resolve(inc.id, "bob")
    sleeps = Sleeps()
    dispatcher(store, SlackWebhook(slack.webhook_url), sleeps).run_once()
    assert 3.0 in sleeps and "Resolved by bob" in slack.calls[-1]["body"]["text"]


# -- through the command line, with the real Redis --------------------------------------------

def _env(slack: FakeSlack, url: str, prefix: str, api_url: str | None = None) -> dict[str, str]:  # noqa: F811
    return {**os.environ, "LOGWARDEN_REDIS_URL": url, "LOGWARDEN_REDIS_PREFIX": prefix,
            "LOGWARDEN_SLACK_TOKEN": TOKEN, "LOGWARDEN_SLACK_CHANNEL": "#security",
            "LOGWARDEN_SLACK_API_URL": api_url or slack.api_url, "LOGWARDEN_SLACK_MIN_INTERVAL": "0",
            "LOGWARDEN_SLACK_TIMEOUT": "2", "LOGWARDEN_SLACK_DIGEST_THRESHOLD": "50",
            "LOGWARDEN_MODEL_ENABLED": "false"}  # rule incidents only: the counts below are theirs


def _auth_log(path: Path) -> Path:
    lines = [f"Nov 24 10:0{k // 60}:{k % 60:02d} h sshd[1]: Failed password for alice from 192.0.2.{1 + k // 20} "
             f"port {k} ssh2" for k in range(60)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_running_twice_over_the_same_input_sends_nothing_new(slack: FakeSlack, redis_url: str,  # noqa: F811
                                                             redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    log = _auth_log(tmp_path / "auth.log")
    env = _env(slack, redis_url, redis_prefix)
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log)], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
    assert len(slack.posts()) == 3  # three attacking addresses, one message each, once
    listed = subprocess.run([sys.executable, "-m", "logwarden.cli", "incidents", "list", "--json"], env=env,
                            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert len(listed.stdout.splitlines()) == 3


def test_killed_between_recorded_and_sent_sends_exactly_once_after_restart(
        slack: FakeSlack, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    log = _auth_log(tmp_path / "auth.log")
    with __import__("socket").socket() as s:  # a port where nothing listens: Slack is unreachable
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/"
    env = _env(slack, redis_url, redis_prefix, api_url=dead)
    proc = subprocess.Popen([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(redis_url)
    for _ in range(600):  # bounded: up to 60 s for the incidents to be recorded
        if client.zcard(f"{redis_prefix}outbox") == 3:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert client.zcard(f"{redis_prefix}outbox") == 3 and slack.calls == []
    env = _env(slack, redis_url, redis_prefix)
    for _ in range(2):  # the restart delivers; a second pass finds nothing left
        # the killed process's delivery leases expire within 30 s; then the restart takes over
        done = subprocess.run([sys.executable, "-m", "logwarden.cli", "incidents", "notify", "--timeout", "90"],
                              env=env, capture_output=True, text=True, cwd=ROOT, timeout=180, check=False)
        assert done.returncode == 0 and "outbox empty" in done.stdout, done.stderr
    assert len(slack.posts()) == 3


def test_incident_commands(redis_url: str, redis_prefix: str, slack: FakeSlack, tmp_path: Path) -> None:  # noqa: F811
    env = _env(slack, redis_url, redis_prefix)
    log = _auth_log(tmp_path / "auth.log")
    subprocess.run([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log)], env=env, capture_output=True,
                   cwd=ROOT, timeout=120, check=True)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "logwarden.cli", "incidents", *args], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)

    first = orjson.loads(cli("list", "--json").stdout.splitlines()[0])
    assert cli("ack", first["id"], "--by", "alice", "--note", "mine").stdout.strip() == f"{first['id']} acknowledged"
    shown = orjson.loads(cli("show", first["id"]).stdout)
    assert shown["state"] == "acknowledged" and shown["history"][-1]["by"] == "alice"
    assert len(cli("list", "--state", "acknowledged", "--json").stdout.splitlines()) == 1
    assert cli("resolve", first["id"], "--by", "bob").returncode == 0
    made = cli("silence", "--entity", "192.0.2.9", "--for", "2h", "--reason", "pentest", "--by", "bob")
    sid = made.stdout.split()[0]
    assert sid.startswith("SIL-") and sid in cli("silences").stdout
    assert cli("unsilence", sid).returncode == 0 and sid not in cli("silences").stdout
    bad = cli("silence", "--rule", "x", "--entity", "y", "--for", "1h", "--reason", "r")
    assert bad.returncode == 2 and "exactly one" in bad.stderr
    assert cli("ack", "INC-nope").returncode == 2
    no_redis = subprocess.run([sys.executable, "-m", "logwarden.cli", "incidents", "list"],
                              env={k: v for k, v in env.items() if k != "LOGWARDEN_REDIS_URL"},
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert no_redis.returncode == 2 and "LOGWARDEN_REDIS_URL" in no_redis.stderr
    assert WEBHOOK_PATH not in no_redis.stderr


def test_selftest_sends_a_test_notification(slack: FakeSlack) -> None:  # noqa: F811
    env = {**os.environ, "LOGWARDEN_SLACK_TOKEN": TOKEN, "LOGWARDEN_SLACK_CHANNEL": "#security",
           "LOGWARDEN_SLACK_API_URL": slack.api_url}
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "selftest"], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0 and "test message delivered" in proc.stdout
    [post] = slack.posts()
    assert "SELFTEST" in post["body"]["text"] and "not an incident" in orjson.dumps(post["body"]).decode()
    slack.down = True
    failing = subprocess.run([sys.executable, "-m", "logwarden.cli", "selftest"], env=env, capture_output=True,
                             text=True, cwd=ROOT, timeout=300, check=False)
    assert failing.returncode == 1 and "notify: Slack" in failing.stdout and TOKEN not in failing.stdout

"""Acting from Slack: `logwarden slack serve` (the real Bolt app, HTTP mode) receives button
clicks and /logwarden commands signed exactly as Slack signs them, changes incidents in the real
Redis, records who did it in the history and the audit trail, and edits the message through the
local Slack server. Forged, stale and replayed requests, and non-responders, change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from logwarden.alerts import Alert
from logwarden.audit.trail import AuditTrail
from logwarden.incidents.dispatch import Dispatcher, DispatchPolicy
from logwarden.incidents.model import Incident
from logwarden.incidents.redis_backend import RedisBackend
from logwarden.incidents.store import IncidentStore
from logwarden.notify.slack import SlackBot
from tests.fakes import TOKEN, FakeSlack, redis_prefix, redis_url, slack  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the app's signing secret (Slack's documentation example)
AUDIT_KEY = "k" * 32
T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


def sign(body: str, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack's signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={mac}",
            "Content-Type": "application/x-www-form-urlencoded"}


def click(action: str, iid: str, user: str, name: str, channel: str = "C0SEC") -> str:
    """The form body of a block_actions request, as Slack posts it to the interactivity URL."""
    payload = {"type": "block_actions", "team": {"id": "T0"}, "user": {"id": user, "username": name, "name": name},
               "api_app_id": "A0", "token": "legacy", "trigger_id": "1.2.3", "channel": {"id": channel},
               "container": {"type": "message", "message_ts": "1.000001", "channel_id": channel},
               "message": {"ts": "1.000001", "text": "incident"}, "response_url": "https://hooks.invalid/x",
               "actions": [{"type": "button", "action_id": action, "block_id": "incident", "value": iid,
                            "text": {"type": "plain_text", "text": action}, "action_ts": str(time.time())}]}
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def command(text: str, user: str, name: str) -> str:
    return urllib.parse.urlencode({"token": "legacy", "team_id": "T0", "channel_id": "C0SEC", "user_id": user,
                                   "user_name": name, "command": "/logwarden", "text": text,
                                   "response_url": "https://hooks.invalid/y", "trigger_id": "4.5.6",
                                   "api_app_id": "A0"})


class App:
    def __init__(self, port: int, proc: subprocess.Popen[str]) -> None:
        self.url, self.proc = f"http://127.0.0.1:{port}", proc

    def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(self.url + "/slack/events", body.encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def world(slack: FakeSlack, redis_url: str, redis_prefix: str, tmp_path: Path  # noqa: F811
          ) -> Iterator[tuple[App, IncidentStore, dict[str, Incident], Path]]:
    """Two incidents posted with buttons, and the app serving on a free port."""
    store = IncidentStore(RedisBackend.from_url(redis_url, redis_prefix))
    store.apply([Alert("a1", "ssh-bruteforce-then-success", "critical", "203.0.113.77", T0, T0, 13,
                       "12 failures, then in as bob", ["auth.log:13"], [], 0, "Brute force then success",
                       related=["bob"]),
                 Alert("a2", "web-404-burst", "high", "198.51.100.23", T0, T0, 70, "70 not-found answers",
                       ["access.log:9"], [], 0, "404 burst")])
    Dispatcher(store, SlackBot(TOKEN, "C0SEC", slack.api_url, 5, interactive=True),
               DispatchPolicy(min_interval=0)).run_once()
    incidents = {i.entity: i for i in store.list()}
    slack.usergroups["S0SECOPS"] = ["U0BOB"]
    audit = tmp_path / "audit"
    port = _port()
    env = {**os.environ, "LOGWARDEN_REDIS_URL": redis_url, "LOGWARDEN_REDIS_PREFIX": redis_prefix,
           "LOGWARDEN_SLACK_TOKEN": TOKEN, "LOGWARDEN_SLACK_CHANNEL": "C0SEC", "LOGWARDEN_SLACK_API_URL": slack.api_url,
           "LOGWARDEN_SLACK_MIN_INTERVAL": "0", "LOGWARDEN_SLACK_SIGNING_SECRET": SECRET,
           "LOGWARDEN_SLACK_RESPONDERS": "U0ALICE,S0SECOPS", "LOGWARDEN_AUDIT_DIR": str(audit),
           "LOGWARDEN_AUDIT_KEY": AUDIT_KEY, "LOGWARDEN_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "slack", "serve", "--port", str(port),
                             "--host", "127.0.0.1"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    app = App(port, proc)
    for _ in range(200):
        try:
            with urllib.request.urlopen(app.url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"slack serve did not start: {proc.communicate()[1]}")
    yield app, store, incidents, audit
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def until(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("timed out")


def trail(audit: Path) -> list[dict[str, Any]]:
    return [data for _, data in AuditTrail(audit, "decisions", AUDIT_KEY.encode(), fsync="never").records_after(0)]


def updates_of(fake: FakeSlack, iid: str) -> list[str]:
    bodies = [orjson.dumps(c["body"]).decode() for c in fake.ok_calls("chat.update")]
    return [b for b in bodies if iid in b]


def test_buttons_acknowledge_resolve_and_silence_as_the_person_who_clicked(
        world: tuple[App, IncidentStore, dict[str, Incident], Path], slack: FakeSlack) -> None:  # noqa: F811
    app, store, incidents, audit = world
    brute = incidents["203.0.113.77"]
    first = orjson.dumps(slack.posts(thread=False)[0]["body"]).decode()
    assert "logwarden_ack" in first and "logwarden_silence_24h" in first  # the message carries the buttons

    body = click("logwarden_ack", brute.id, "U0ALICE", "alice")
    assert app.post(body, sign(body))[0] == 200
    acked = until(lambda: (i := store.get(brute.id)) and i.state == "acknowledged" and i)
    entry = acked.history[-1]
    assert entry["by"] == "alice" and entry["slack_user"] == {"id": "U0ALICE", "name": "alice"}
    edited = until(lambda: [u for u in updates_of(slack, brute.id) if "Acknowledged by <@U0ALICE>" in u])
    assert "logwarden_ack" not in edited[-1] and "logwarden_resolve" in edited[-1]  # no second Acknowledge
    assert until(lambda: any("Acknowledged by <@U0ALICE>" in p["body"]["text"] for p in slack.posts(thread=True)))
    records = until(lambda: [r for r in trail(audit) if r.get("id") == brute.id])
    assert records[-1]["slack_user"] == {"id": "U0ALICE", "name": "alice"} and records[-1]["state"] == "acknowledged"

    body = click("logwarden_resolve", brute.id, "U0BOB", "bob")  # bob is a responder through S0SECOPS
    assert app.post(body, sign(body))[0] == 200
    until(lambda: store.get(brute.id).state == "resolved")  # type: ignore[union-attr]
    resolved = until(lambda: [u for u in updates_of(slack, brute.id) if "Resolved by <@U0BOB>" in u])
    assert "logwarden_resolve" not in resolved[-1]  # a resolved incident shows no buttons

    scan = incidents["198.51.100.23"]
    body = click("logwarden_silence_1h", scan.id, "U0ALICE", "alice")
    assert app.post(body, sign(body))[0] == 200
    [silence] = until(lambda: store.silences())
    assert (silence.matcher, silence.value, silence.author) == ("entity", "198.51.100.23", "alice")
    assert 3590 < silence.expires_at - silence.created_at <= 3600
    assert until(lambda: [u for u in updates_of(slack, scan.id) if "Silenced by <@U0ALICE> (alice): 1h (until" in u])
    assert until(lambda: [r for r in trail(audit) if r.get("command") == "silence"])[0]["slack_user"]["id"] == "U0ALICE"


def test_forged_stale_and_replayed_requests_and_outsiders_change_nothing(
        world: tuple[App, IncidentStore, dict[str, Incident], Path], slack: FakeSlack) -> None:  # noqa: F811
    app, store, incidents, audit = world
    inc = incidents["198.51.100.23"]
    before = store.get(inc.id).to_json()  # type: ignore[union-attr]
    body = click("logwarden_resolve", inc.id, "U0ALICE", "alice")
    assert app.post(body, sign(body, secret="not-the-secret"))[0] == 401  # forged
    assert app.post(body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401  # unsigned
    assert app.post(body, sign(body, ts=int(time.time()) - 6 * 60))[0] == 401  # signed, 6 minutes old
    tampered = click("logwarden_resolve", inc.id, "U0ALICE", "alice").replace("alice", "alicf")
    assert app.post(tampered, sign(body))[0] == 401  # a body other than the one signed
    outsider = click("logwarden_resolve", inc.id, "U0EVE", "eve")
    assert app.post(outsider, sign(outsider))[0] == 200
    refusal = until(lambda: slack.ok_calls("chat.postEphemeral"))
    assert refusal[0]["body"]["user"] == "U0EVE" and "responders" in refusal[0]["body"]["text"]
    ack = click("logwarden_ack", inc.id, "U0ALICE", "alice")
    headers = sign(ack)
    assert app.post(ack, headers)[0] == 200
    until(lambda: store.get(inc.id).state == "acknowledged")  # type: ignore[union-attr]
    history = store.get(inc.id).history  # type: ignore[union-attr]
    assert app.post(ack, headers)[0] == 409  # the same signed request again: a replay
    time.sleep(1)
    after = store.get(inc.id)
    assert after.history == history and after.state == "acknowledged"  # type: ignore[union-attr]
    assert orjson.loads(before)["state"] == "open" and not [r for r in trail(audit) if r.get("as") == "eve"]
    app.proc.terminate()
    err = app.proc.communicate(timeout=30)[1]
    refused = [orjson.loads(line) for line in err.splitlines() if "slack_request_refused" in line]
    assert len(refused) == 5 and sum(r["reason"] == "replayed" for r in refused) == 1
    assert any(r.get("event") == "slack_action_refused" and r["user"] == "U0EVE"
               for r in map(orjson.loads, filter(str.strip, err.splitlines())))
    assert SECRET not in err and TOKEN not in err


def test_the_slash_command(world: tuple[App, IncidentStore, dict[str, Incident], Path]) -> None:
    app, store, incidents, _ = world
    brute = incidents["203.0.113.77"]

    def run(text: str, user: str = "U0ALICE", name: str = "alice") -> str:
        body = command(text, user, name)
        status, answer = app.post(body, sign(body))
        assert status == 200
        return answer

    listed = run("open")
    assert "2 open or acknowledged" in listed and brute.id in listed and "203.0.113.77, bob" in listed
    assert listed.index(brute.id) < listed.index(incidents["198.51.100.23"].id)  # the critical first
    shown = run(f"show {brute.id}")
    assert "CRITICAL" in shown and "ssh-bruteforce-then-success" in shown
    assert "may change" in run(f"ack {brute.id}", "U0EVE", "eve")
    assert store.get(brute.id).state == "open"  # type: ignore[union-attr]
    assert f"{brute.id} acknowledged by you" in run(f"ack {brute.id}")
    assert store.get(brute.id).history[-1]["slack_user"]["id"] == "U0ALICE"  # type: ignore[union-attr]
    assert "Usage" in run("ack nonsense") and "Usage" in run("")
    assert "no incident" in run("show INC-0000000000")


def test_the_app_manifest_matches_what_the_app_serves() -> None:
    import yaml

    from logwarden.notify.slack import ACTIONS
    from logwarden.notify.slack_app import BUTTONS, EVENTS_PATH

    manifest = yaml.safe_load((ROOT / "deploy" / "slack-app-manifest.yaml").read_text())
    interactivity = manifest["settings"]["interactivity"]
    [cmd] = manifest["features"]["slash_commands"]
    assert interactivity["is_enabled"] and interactivity["request_url"].endswith(EVENTS_PATH)
    assert cmd["command"] == "/logwarden" and cmd["url"] == interactivity["request_url"]
    assert not manifest["settings"]["socket_mode_enabled"]  # HTTP mode, as `slack serve` runs
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "usergroups:read", "channels:history"} <= scopes
    assert all(BUTTONS.match(action) for action in ACTIONS)  # every button the messages carry is handled


def test_serve_refuses_to_start_without_its_secrets(redis_url: str) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    done = subprocess.run([sys.executable, "-m", "logwarden", "slack", "serve"],
                          env={**env, "LOGWARDEN_REDIS_URL": redis_url}, capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False)
    assert done.returncode == 2 and "LOGWARDEN_SLACK_SIGNING_SECRET" in done.stderr
    env |= {"LOGWARDEN_REDIS_URL": redis_url, "LOGWARDEN_SLACK_SIGNING_SECRET": SECRET}
    done = subprocess.run([sys.executable, "-m", "logwarden", "slack", "serve"], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2 and "LOGWARDEN_SLACK_TOKEN" in done.stderr and SECRET not in done.stderr

"""``logwarden slack serve``: the Slack app that lets a team work incidents from Slack.

slack_bolt in HTTP mode receives the buttons of each incident message (Acknowledge, Resolve,
Silence 1h, Silence 24h) and the slash command ``/logwarden open | show ID | ack ID | resolve ID``.

- Every request is verified by Bolt with the app's signing secret: a bad or missing signature,
  or a timestamp more than 5 minutes off, is refused (401) and logged, and changes nothing. A
  request replayed within those 5 minutes is refused too: each signature is accepted once
  (remembered in the incident backend, so every replica of the app sees it).
- Only responders (``LOGWARDEN_SLACK_RESPONDERS``: user ids, or user-group ids whose members
  are looked up) may change incidents; others get an ephemeral refusal. Empty: everyone.
- The acting person's Slack id and name go into the incident history and the audit trail; the
  incident's message is then edited (by the dispatcher, as for every change) to show who did it.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from slack_bolt import App, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from logwarden.errors import LogwardenError
from logwarden.incidents.model import Incident, severity_rank
from logwarden.incidents.store import IncidentStore
from logwarden.notify.slack import escape, rule_lines
from logwarden.timeutil import format_duration

log = structlog.get_logger("logwarden.slack")
EVENTS_PATH = "/slack/events"
REPLAY_MS = 10 * 60 * 1000  # a signature is remembered longer than Slack's 5-minute tolerance
SILENCES = {"logwarden_silence_1h": timedelta(hours=1), "logwarden_silence_24h": timedelta(hours=24)}
BUTTONS = re.compile(r"^logwarden_(ack|resolve|silence_1h|silence_24h)$")
_ID = re.compile(r"^INC-[0-9a-f]{10}$")
OPEN_LISTED = 20
REFUSAL = "Only the incident responders may change incidents."
Record = Callable[[str, dict[str, Any]], None]  # (kind, data) -> the audit trail


class Responders:
    """Who may change incidents: Slack user ids (U..., W...) and user-group ids (S...), whose
    members are read with usergroups.users.list and kept for ``ttl`` seconds. None given:
    everyone who can see the message."""

    def __init__(self, ids: Iterable[str], client: WebClient, ttl: float = 300) -> None:
        ids = list(ids)
        self.users = {i for i in ids if not i.startswith("S")}
        self.groups = [i for i in ids if i.startswith("S")]
        self._client = client
        self._ttl = ttl
        self._members: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    @property
    def everyone(self) -> bool:
        return not self.users and not self.groups

    def allowed(self, user_id: str) -> bool:
        if self.everyone or user_id in self.users:
            return True
        return any(user_id in self._group(g) for g in self.groups)

    def _group(self, group: str) -> set[str]:
        with self._lock:
            cached = self._members.get(group)
            if cached is not None and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
        try:
            members = set(self._client.usergroups_users_list(usergroup=group).get("users", []))
        except Exception as exc:  # unknown group, missing scope: nobody from it, and say so
            log.warning("slack_usergroup_unreadable", usergroup=group, error=type(exc).__name__)
            members = set()
        with self._lock:
            self._members[group] = (time.monotonic(), members)
        return members


def build_app(store: IncidentStore, signing_secret: str, client: WebClient, responders: Responders,
              record: Record, after_change: Callable[[], None]) -> App:
    """The Bolt app. ``record`` writes to the audit trail; ``after_change`` delivers the change
    (edits the message, replies in its thread)."""
    app = App(signing_secret=signing_secret, client=client, token_verification_enabled=False,
              ssl_check_enabled=False, url_verification_enabled=True)

    @app.middleware
    def once_only(req: Any, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        """Runs after Bolt verified the signature: a verified request seen before is a replay."""
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if not store.backend.lease(f"slack-request:{signature}", uuid.uuid4().hex, REPLAY_MS):
            log.warning("slack_request_refused", reason="replayed")
            return BoltResponse(status=409, body='{"error": "replayed request"}')
        return next()

    def act(kind: str, iid: str, user: dict[str, str]) -> str:
        """Change one incident as ``user`` ({"id", "name"}); what happened, in a sentence. The
        message is edited by ``after_change``, which must not block (a slash command's answer
        is due within 3 seconds)."""
        name = user["name"] or user["id"]
        try:
            if kind in ("ack", "resolve"):
                inc = (store.ack if kind == "ack" else store.resolve)(iid, name, "from Slack", user)
                record("incident", {"command": kind, "id": inc.id, "state": inc.state, "as": name,
                                    "slack_user": user, "via": "slack"})
                text = f"{inc.id} {inc.state} by you"
            else:
                length = SILENCES[f"logwarden_{kind}"]
                inc, made = store.silence_incident(iid, length, name, user)
                for s in made:
                    record("silence", {"command": "silence", **s.public(), "slack_user": user, "via": "slack"})
                text = f"{inc.id}: {', '.join(s.value for s in made)} silenced for {format_duration(length)}"
        except LogwardenError as exc:
            return str(exc)
        after_change()
        return text

    def refused(user: dict[str, str], action: str) -> bool:
        """Not a responder: logged, and the caller answers with ``REFUSAL``."""
        if responders.allowed(user["id"]):
            return False
        log.warning("slack_action_refused", reason="not a responder", user=user["id"], action=action)
        return True

    def user_of(body: dict[str, Any]) -> dict[str, str]:
        u = body.get("user") or {}
        return {"id": str(u.get("id", "")), "name": str(u.get("username") or u.get("name") or "")}

    @app.action(BUTTONS)
    def on_button(ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                  client: WebClient) -> None:
        ack()
        user = user_of(body)
        kind = BUTTONS.match(action["action_id"]).group(1)  # type: ignore[union-attr]
        iid = str(action.get("value", ""))
        if not _ID.match(iid):
            log.warning("slack_action_refused", reason="not an incident id", user=user["id"], action=kind)
            return
        if refused(user, kind):
            channel = (body.get("channel") or {}).get("id")
            if channel:
                client.chat_postEphemeral(channel=channel, user=user["id"], text=REFUSAL)
            return
        outcome = act(kind, iid, user)
        log.info("slack_action", user=user["id"], action=kind, incident=iid, outcome=outcome)

    @app.command("/logwarden")
    def on_command(ack: Callable[..., None], command: dict[str, Any]) -> None:
        words = str(command.get("text", "")).split()
        verb, arg = (words[0].lower() if words else "help"), (words[1] if len(words) > 1 else "")
        user = {"id": str(command.get("user_id", "")), "name": str(command.get("user_name", ""))}
        if verb == "open":
            return ack(open_list(store))
        if verb in ("show", "ack", "resolve") and not _ID.match(arg):
            return ack(f"Usage: /logwarden {verb} INC-0123456789")
        if verb == "show":
            inc = store.get(arg)
            return ack(describe(inc) if inc else f"no incident {arg}")
        if verb in ("ack", "resolve"):
            return ack(REFUSAL if refused(user, verb) else act(verb, arg, user))
        return ack("Usage: /logwarden open | show ID | ack ID | resolve ID")

    return app


def open_list(store: IncidentStore) -> str:
    live = [i for i in store.list(limit=None) if i.state != "resolved"]
    if not live:
        return "No open incidents."
    live.sort(key=lambda i: (-severity_rank(i.severity), -i.created_at))
    lines = [f"• `{i.id}` {i.severity} {i.state} {escape(', '.join(i.all_entities()))}: "
             f"{escape(', '.join(i.rule_stats()))}" for i in live[:OPEN_LISTED]]
    if len(live) > OPEN_LISTED:
        lines.append(f"… and {len(live) - OPEN_LISTED} more (`logwarden incidents list`)")
    return f"{len(live)} open or acknowledged:\n" + "\n".join(lines)


def describe(inc: Incident) -> str:
    head = f"`{inc.id}` {inc.severity.upper()} {inc.state}: {escape(', '.join(inc.all_entities()))}"
    return f"{head}\n{escape(inc.summary)}\n{rule_lines(inc.rule_stats())}"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def wsgi(app: App) -> Callable[..., Iterable[bytes]]:
    """Slack's requests on ``/slack/events``, a health check on ``/healthz``; refusals logged."""
    handler = SlackRequestHandler(app, EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        def recording(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if status.startswith("401"):
                stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
                log.warning("slack_request_refused", reason="bad signature, or a timestamp over 5 minutes off",
                            has_signature=bool(environ.get("HTTP_X_SLACK_SIGNATURE")),
                            age_s=_age(stamp))
            return start_response(status, headers, *rest)

        return handler(environ, recording)

    return application


def _age(stamp: str) -> float | None:
    try:
        return round(time.time() - int(stamp), 1)
    except ValueError:
        return None


def serve(app: App, host: str, port: int) -> WSGIServer:
    """A threaded WSGI server for the app (stdlib; put TLS in front of it: Slack needs HTTPS)."""
    return make_server(host, port, wsgi(app), server_class=_ThreadingServer, handler_class=_QuietHandler)

"""Slack: a bot token (chat.postMessage, then chat.update and thread replies) or an incoming
webhook (follow-ups as new messages that name the incident). ``build_slack_blocks`` is pure."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError

from logwarden.incidents.model import Incident, severity_rank
from logwarden.notify.base import DeliveryError, MessageRef, classify_status

SEVERITY_EMOJI = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:",
                  "high": ":large_orange_circle:", "critical": ":red_circle:"}
STATE_LABEL = {"open": "OPEN", "acknowledged": "ACKNOWLEDGED", "resolved": "RESOLVED"}
DIGEST_LINES = 40
DIGEST_CHARS = 2800  # a section block holds 3000 characters


def escape(text: object) -> str:
    """Slack mrkdwn escaping: ``<!channel>`` and ``<http://x|y>`` arrive as literal text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


RULE_LINES = 10  # rules listed in an incident's message
ACTIONS = {  # button action id -> its label; `logwarden slack serve` handles each
    "logwarden_ack": "Acknowledge", "logwarden_resolve": "Resolve",
    "logwarden_silence_1h": "Silence 1h", "logwarden_silence_24h": "Silence 24h",
}
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def who_did(entry: dict[str, Any]) -> str:
    """Who acted, for a message: a Slack mention and the name when Slack told us (its id
    checked), else the name as text."""
    user = entry.get("slack_user") or {}
    if _SLACK_USER.match(str(user.get("id", ""))):
        return f"<@{user['id']}>" + (f" ({escape(user['name'])})" if user.get("name") else "")
    return escape(entry.get("by", "?"))


def build_slack_blocks(incident: Incident, interactive: bool = False) -> dict[str, Any]:
    """The Block Kit message for an incident (``text`` is the notification fallback); with
    ``interactive``, the buttons `logwarden slack serve` answers."""
    i = incident
    state = STATE_LABEL.get(i.state, i.state.upper())
    rules = i.rule_stats()
    entities = i.all_entities()
    title = i.rule_id if len(rules) == 1 else f"{entities[0]} · {len(rules)} rules"
    head = f"{SEVERITY_EMOJI.get(i.severity, '')} {i.severity.upper()} · {escape(title)} · {state}".strip()
    if i.over_budget is not None:  # a detector's day past its noise budget (the summary names its top entities)
        who = f"*Over budget on*\n{escape(i.over_budget['day'])} (budget: {i.over_budget['budget']} a day)"
        count = f"*Alerts folded*\n{i.count:,}"
    elif len(entities) == 1:
        who, count = f"*Principal*\n`{escape(i.entity)}`", f"*Count*\n{i.count}"
    else:
        who = "*Entities*\n" + ", ".join(f"`{escape(e)}`" for e in entities)
        count = f"*Count*\n{i.count}"
    fields = [
        {"type": "mrkdwn", "text": who},
        {"type": "mrkdwn", "text": count},
        {"type": "mrkdwn", "text": f"*First seen*\n{escape(i.first_seen)}"},
        {"type": "mrkdwn", "text": f"*Last seen*\n{escape(i.last_seen)}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(i.description)}*\n{escape(i.summary)}"}},
        {"type": "section", "fields": fields},
    ]
    if len(rules) > 1:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": rule_lines(rules)}})
    if i.explanation:
        why = f"*Why unusual*\n{escape(i.explanation)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": why}})
    if i.evidence:
        lines = "\n".join(f"• `{escape(ref)}`" for ref in i.evidence[:5])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Evidence* (redacted)\n{lines}"}})
    if interactive and i.state != "resolved":
        blocks.append({"type": "actions", "block_id": "incident", "elements": [
            {"type": "button", "action_id": action, "text": {"type": "plain_text", "text": label}, "value": i.id,
             **({"style": "primary"} if action == "logwarden_resolve" else {})}
            for action, label in ACTIONS.items() if not (action == "logwarden_ack" and i.state == "acknowledged")]})
    context = [f"Incident `{escape(i.id)}`"]
    if i.tags:
        context.append("Controls: " + ", ".join(escape(t) for t in i.tags))
    if i.state == "open" and not interactive:
        context.append(f"Acknowledge: `logwarden incidents ack {escape(i.id)} --by <you>`")
    elif i.state != "open":
        entry = next((h for h in reversed(i.history) if h["action"] == i.state), None)
        if entry:
            context.append(f"{state.title()} by {who_did(entry)} at {escape(entry['at'])}")
    silenced = next((h for h in reversed(i.history) if h["action"] == "silenced"), None)
    if silenced and i.silenced_by:
        context.append(f"Silenced by {who_did(silenced)}: {escape(silenced.get('note', ''))}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    names = i.rule_id if len(rules) == 1 else f"{len(rules)} rules ({', '.join(rid for rid, _ in ordered(rules))})"
    text = f"[{i.severity.upper()}] {names} {', '.join(entities)}: {i.summary} ({state}, {i.id})"
    return {"text": escape(text)[:3000], "blocks": blocks}


def ordered(rules: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """A grouped incident's rules, most severe first, then by first seen: the same order however
    the alerts came in."""
    return sorted(rules.items(), key=lambda kv: (-severity_rank(kv[1]["severity"]), kv[1]["first_seen"], kv[0]))


def rule_lines(rules: dict[str, dict[str, Any]]) -> str:
    """The rules of a grouped incident, most severe first: severity, count, first and last seen."""
    order = ordered(rules)
    lines = [f"• {SEVERITY_EMOJI.get(r['severity'], '')} `{escape(rid)}` {escape(r['severity'])} · "
             f"{r['count']:,} · {escape(r['first_seen'])} .. {escape(r['last_seen'])}"
             f"{' (ended)' if r.get('resolved') else ''}" for rid, r in order[:RULE_LINES]]
    if len(order) > RULE_LINES:
        lines.append(f"… and {len(order) - RULE_LINES} more")
    return "*Rules*\n" + "\n".join(lines)


def build_reply(incident: Incident, event: dict[str, Any]) -> dict[str, Any]:
    kind = event.get("kind", "")
    i = incident
    subject = f"{i.id} [{i.rule_id if len(i.rule_stats()) == 1 else i.entity}]"
    if kind == "rule":  # a rule joined the incident
        line = f"+ {escape(event.get('rule', '?'))}, {escape(event.get('severity', '?'))}"
    elif kind == "linked":
        line = f"+ linked `{escape(event.get('entity', '?'))}` (by {escape(event.get('rule', '?'))})"
    elif kind == "renotify" and i.over_budget is not None:
        line = escape(f"{subject} Still over budget: {i.count:,} alerts folded, last seen {i.last_seen}")
    elif kind == "renotify":
        line = escape(f"{subject} Still firing: {i.count} events, last seen {i.last_seen}")
    else:
        who = who_did(event) if event.get("slack_user") else escape(event.get("by", "?"))
        line = f"{escape(subject)} {escape(kind.title())} by {who}" + (
            f": {escape(event['note'])}" if event.get("note") else "")
    return {"text": line, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]}


def build_digest(incidents: list[Incident]) -> dict[str, Any]:
    """One message for many new medium and low incidents (high and critical ones have their
    own), in the order given (by severity, then count): as many lines as fit, then how many more."""
    lines: list[str] = []
    size = 0
    for i in incidents[:DIGEST_LINES]:
        emoji = SEVERITY_EMOJI.get(i.severity, "")
        rules = i.rule_stats()
        more = f" +{len(rules) - 1} rule{'s' if len(rules) > 2 else ''}" if len(rules) > 1 else ""
        line = f"• {emoji} `{escape(i.id)}` {escape(i.rule_id)}{more} `{escape(i.entity)}` ({i.count:,})"
        if size + len(line) > DIGEST_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
    if len(lines) < len(incidents):
        lines.append(f"… and {len(incidents) - len(lines)} more, not shown (`logwarden incidents list`)")
    kinds = sorted({i.severity for i in incidents}, key=severity_rank, reverse=True)
    title = f"{len(incidents)} new {' and '.join(kinds)} incidents"
    return {"text": title, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}


def _api_error(exc: Exception, what: str) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        headers = getattr(response, "headers", {}) or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        if status == 200:  # Slack said ok: false (e.g. channel_not_found): not retryable
            error = response.get("error", "error") if hasattr(response, "get") else "error"
            return DeliveryError(f"{what}: Slack answered {error}", False)
        return classify_status(status, retry_after, what)
    # Timeouts, refused connections, broken answers: worth another try. Only the type is
    # reported: exception texts can carry URLs.
    return DeliveryError(f"{what}: {type(exc).__name__}", True)


METADATA_TYPE = "logwarden_incident"


def _metadata(incident_ids: list[str]) -> dict[str, Any]:
    """Message metadata naming the incidents a top-level message is for: after a crash between
    Slack's answer and our record of it, ``SlackBot.find`` recognises the message instead of
    posting it again."""
    return {"event_type": METADATA_TYPE, "event_payload": {"incidents": ",".join(incident_ids)}}


class SlackBot:
    name: ClassVar[str] = "slack_bot"
    updates_in_place: ClassVar[bool] = True

    def __init__(self, token: str, channel: str, base_url: str | None = None, timeout: float = 10,
                 interactive: bool = False) -> None:
        self.interactive = interactive  # messages carry buttons (`logwarden slack serve` answers them)
        kwargs: dict[str, Any] = {"token": token, "timeout": int(max(timeout, 1)), "retry_handlers": []}
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self._client = WebClient(**kwargs)
        self._channel = channel
        self._ids: dict[str, str] = {}  # channel as configured -> its id, from Slack's answers

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(**kwargs)
        except Exception as exc:
            raise _api_error(exc, what) from None

    def post(self, incident: Incident, channel: str | None) -> MessageRef:
        msg = build_slack_blocks(incident, self.interactive)
        resp = self._call("chat.postMessage", "chat_postMessage", channel=channel or self._channel,
                          metadata=_metadata([incident.id]), **msg)
        return self._ref(channel, resp)

    def _ref(self, channel: str | None, resp: Any, **extra: Any) -> MessageRef:
        self._ids[channel or self._channel] = resp["channel"]
        return {"channel": resp["channel"], "ts": resp["ts"], **extra}

    def find(self, incident_ids: list[str], channel: str | None, since: float) -> MessageRef | None:
        """The top-level message posted for these incidents since ``since`` (epoch seconds), from
        the channel's history and the messages' metadata; None when there is none or it cannot be
        read (then the caller sends, at least once)."""
        name = channel or self._channel
        channel_id = self._ids.get(name, name)
        try:
            resp = self._history(channel_id, since)
        except Exception:  # e.g. a channel name where Slack wants an id: look the id up once
            looked_up = self._lookup(name)
            if looked_up is None or looked_up == channel_id:
                return None
            channel_id = looked_up
            try:
                resp = self._history(channel_id, since)
            except Exception:
                return None
        wanted = set(incident_ids)
        for msg in resp.get("messages", []):
            meta = msg.get("metadata") or {}
            ids = str((meta.get("event_payload") or {}).get("incidents", "")).split(",")
            if meta.get("event_type") == METADATA_TYPE and wanted <= set(ids) and not msg.get("thread_ts"):
                return {"channel": channel_id, "ts": msg["ts"], **({"digest": True} if len(ids) > 1 else {})}
        return None

    def _history(self, channel_id: str, since: float) -> Any:
        return self._client.conversations_history(channel=channel_id, oldest=f"{since:.6f}",
                                                  include_all_metadata=True, limit=200)

    def _lookup(self, name: str) -> str | None:
        """A channel's id from its name (``#security``), via conversations.list; None if unknown."""
        if not name.startswith("#"):
            return None
        cursor = None
        try:
            for _ in range(20):
                resp = self._client.conversations_list(types="public_channel,private_channel",
                                                       exclude_archived=True, limit=1000, cursor=cursor)
                for ch in resp.get("channels", []):
                    if ch.get("name") == name[1:]:
                        self._ids[name] = ch["id"]
                        return str(ch["id"])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None
        except Exception:
            return None
        return None

    def update(self, incident: Incident, ref: MessageRef) -> None:
        self._call("chat.update", "chat_update", channel=ref["channel"], ts=ref["ts"],
                   **build_slack_blocks(incident, self.interactive))

    def reply(self, incident: Incident, ref: MessageRef, event: dict[str, Any]) -> None:
        meta = _metadata([incident.id])
        meta["event_payload"]["reply"] = str(event.get("id", ""))
        self._call("chat.postMessage", "chat_postMessage", channel=ref["channel"], thread_ts=ref["ts"],
                   metadata=meta, **build_reply(incident, event))

    def replied(self, incident_id: str, ref: MessageRef, since: float) -> set[str]:
        """The follow-up ids already in the incident's thread since ``since`` (from the replies'
        metadata); empty when the thread cannot be read."""
        try:
            resp = self._client.conversations_replies(channel=ref["channel"], ts=ref["ts"], oldest=f"{since:.6f}",
                                                      include_all_metadata=True, limit=200)
        except Exception:
            return set()
        out = set()
        for msg in resp.get("messages", []):
            payload = (msg.get("metadata") or {}).get("event_payload") or {}
            if incident_id in str(payload.get("incidents", "")).split(",") and payload.get("reply"):
                out.add(str(payload["reply"]))
        return out

    def digest(self, incidents: list[Incident], channel: str | None) -> MessageRef:
        resp = self._call("chat.postMessage", "chat_postMessage", channel=channel or self._channel,
                          metadata=_metadata([i.id for i in incidents]), **build_digest(incidents))
        return self._ref(channel, resp, digest=True)


class SlackWebhook:
    name: ClassVar[str] = "slack_webhook"
    updates_in_place: ClassVar[bool] = False

    def __init__(self, url: str, timeout: float = 10) -> None:
        self._client = WebhookClient(url, timeout=int(max(timeout, 1)), retry_handlers=[])

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            resp = self._client.send(text=payload["text"], blocks=payload["blocks"])
        except Exception as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}", True) from None
        if resp.status_code != 200:
            raise classify_status(resp.status_code, (resp.headers or {}).get("Retry-After")
                                  or (resp.headers or {}).get("retry-after"), "webhook")

    def post(self, incident: Incident, channel: str | None) -> MessageRef:
        self._send(build_slack_blocks(incident))
        return {"webhook": True}

    def update(self, incident: Incident, ref: MessageRef) -> None:
        return None  # a webhook cannot edit; state changes go out as replies

    def reply(self, incident: Incident, ref: MessageRef, event: dict[str, Any]) -> None:
        self._send(build_reply(incident, event))

    def digest(self, incidents: list[Incident], channel: str | None) -> MessageRef:
        self._send(build_digest(incidents))
        return {"webhook": True, "digest": True}

    def find(self, incident_ids: list[str], channel: str | None, since: float) -> MessageRef | None:
        return None  # a webhook cannot read back: after a crash mid-send, at least once

    def replied(self, incident_id: str, ref: MessageRef, since: float) -> set[str]:
        return set()

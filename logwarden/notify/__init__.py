"""Notifiers. A new notifier is one file plus one line in ``NOTIFIERS``."""

from __future__ import annotations

from logwarden.notify.base import DeliveryError, MessageRef, Notifier
from logwarden.notify.slack import SlackBot, SlackWebhook

NOTIFIERS: dict[str, type] = {
    "slack_bot": SlackBot,
    "slack_webhook": SlackWebhook,
}

__all__ = ["NOTIFIERS", "DeliveryError", "MessageRef", "Notifier"]

"""The notifier contract: post an incident, update its message, reply to it, post a digest.
Failures are classified: retryable (429 with Retry-After, 5xx, timeouts, connection errors)
or not (other 4xx: bad token, unknown channel). No error carries a token or webhook URL."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from logwarden.errors import LogwardenError
from logwarden.incidents.model import Incident

MessageRef = dict[str, Any]  # where a message lives: {"channel": ..., "ts": ...}


class DeliveryError(LogwardenError):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def classify_status(status: int, retry_after: str | None, what: str) -> DeliveryError:
    if status == 429:
        try:
            wait = float(retry_after) if retry_after is not None else 1.0
        except ValueError:
            wait = 1.0
        return DeliveryError(f"{what}: rate limited (429), retry after {wait:g}s", True, wait)
    if status >= 500:
        return DeliveryError(f"{what}: server error {status}", True)
    return DeliveryError(f"{what}: rejected with HTTP {status}", False)


class Notifier(Protocol):
    name: ClassVar[str]
    updates_in_place: ClassVar[bool]  # can edit a posted message (else follow-ups are new posts)

    def post(self, incident: Incident, channel: str | None) -> MessageRef: ...
    def update(self, incident: Incident, ref: MessageRef) -> None: ...
    def reply(self, incident: Incident, ref: MessageRef, event: dict[str, Any]) -> None: ...
    def digest(self, incidents: list[Incident], channel: str | None) -> MessageRef: ...
    # The top-level message already posted for these incidents since ``since`` (a crash or a
    # timeout hid Slack's answer), when the service can tell; else None.
    def find(self, incident_ids: list[str], channel: str | None, since: float) -> MessageRef | None: ...
    # The ids of the follow-ups already replied to an incident's message since ``since``.
    def replied(self, incident_id: str, ref: MessageRef, since: float) -> set[str]: ...

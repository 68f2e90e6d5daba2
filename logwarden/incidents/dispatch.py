"""Delivering the outbox: each changed incident's notification, once.

One pass: take the incidents in the outbox; post the new ones (as one digest per channel when
many open at once), update or reply to the ones already posted, and mark what was sent. A
short lease per incident keeps two workers from sending the same thing. 429 waits for
Retry-After, 5xx and timeouts back off and retry; what still fails stays in the outbox for the
next pass, so a Slack outage loses nothing. Other failures are recorded on the incident.
"""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from logwarden.alerts import SEVERITIES
from logwarden.incidents.model import Incident, severity_rank
from logwarden.incidents.store import IncidentStore
from logwarden.notify.base import DeliveryError, MessageRef, Notifier

T = TypeVar("T")
SENDING_SLACK = 5.0  # seconds: clocks differ; look a little before a first post began
log = structlog.get_logger("logwarden.dispatch")


@dataclass(frozen=True)
class DispatchPolicy:
    min_severity: str = "low"
    routes: dict[str, str] = field(default_factory=dict)  # rule id glob -> channel
    digest_threshold: int = 5  # more new incidents than this in one pass: one digest message
    min_interval: float = 1.0  # seconds between messages to one channel (Slack: ~1/s)
    max_attempts: int = 5
    max_wait: float = 20.0  # longest single wait (Retry-After or backoff) within a pass
    # A delivery lease outlives one incident's attempts; after a crash, another process takes
    # over that incident's delivery once the lease has expired.
    lease_ms: int = 30_000


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    deferred: int = 0


class Dispatcher:
    def __init__(self, store: IncidentStore, notifier: Notifier, policy: DispatchPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_report: Callable[[Report], None] | None = None) -> None:
        self.store = store
        self.notifier = notifier
        self.policy = policy or DispatchPolicy()
        self._sleep = sleep
        self._owner = uuid.uuid4().hex
        self._last_post: dict[str, float] = {}
        self._on_report = on_report

    def run_once(self) -> Report:
        report = Report()
        fresh: dict[str | None, list[Incident]] = {}
        for iid in self.store.outbox():  # most severe first
            if not self._lease(iid):
                continue
            keep_lease = False  # a new incident keeps its lease until it is posted below
            try:
                inc = self.store.get(iid)
                if inc is None:
                    self.store.mark_notified(iid, 0, None, 0, notified=False)
                elif not self._wanted(inc):
                    self.store.mark_notified(iid, inc.version, None, len(inc.pending), notified=False)
                elif inc.message is None or _outgrew_digest(inc):
                    fresh.setdefault(self._channel(inc), []).append(inc)
                    keep_lease = True
                else:
                    self._follow_up(inc, report)
            finally:
                if not keep_lease:
                    self.store.backend.release(f"deliver:{iid}", self._owner)
        for channel, group in fresh.items():
            try:
                self._post_new(channel, group, report)
            finally:
                for inc in group:
                    self.store.backend.release(f"deliver:{inc.id}", self._owner)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _lease(self, iid: str) -> bool:
        """Take (or renew) the delivery lease of one incident."""
        return self.store.backend.lease(f"deliver:{iid}", self._owner, self.policy.lease_ms)

    def drain(self, timeout: float) -> bool:
        """Pass until the outbox is empty or ``timeout`` seconds went by; True if empty."""
        deadline = time.monotonic() + timeout
        while True:
            self.run_once()
            if not self.store.outbox() or time.monotonic() >= deadline:
                return not self.store.outbox()
            self._sleep(min(1.0, max(deadline - time.monotonic(), 0)))

    def run_forever(self, stop: threading.Event, interval: float = 1.0,
                    nudge: threading.Event | None = None) -> None:
        """Pass every ``interval`` seconds, and at once when ``nudge`` is set (the flow just
        changed incidents), until ``stop`` is set (set ``nudge`` too, to stop without waiting)."""
        failing = False  # logged when passes start failing (Redis away) and when they work again
        while not stop.is_set():
            try:
                self.store.auto_resolve()
                self.run_once()
                if failing:
                    log.info("dispatch_recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("dispatch_pass_failed", error=type(exc).__name__,
                                note="retried every pass; logged again only once it works")
                failing = True
            if nudge is None:
                stop.wait(interval)
            else:
                nudge.wait(interval)
                nudge.clear()

    # -- internals -------------------------------------------------------------------------
    def _wanted(self, inc: Incident) -> bool:
        if inc.silenced_by is not None and inc.message is None:
            return False
        return SEVERITIES.index(inc.severity) >= SEVERITIES.index(self.policy.min_severity)

    def _channel(self, inc: Incident) -> str | None:
        for pattern, channel in self.policy.routes.items():
            if fnmatch.fnmatchcase(inc.rule_id, pattern):
                return channel
        return None

    def _already_posted(self, incidents: list[Incident], channel: str | None, since: float) -> MessageRef | None:
        try:
            return self.notifier.find([i.id for i in incidents], channel, since - SENDING_SLACK)
        except Exception as exc:  # looking is best effort: not finding means sending
            log.info("notification_lookup_failed", error=type(exc).__name__)
            return None

    def _own_posted(self, inc: Incident, channel: str | None, since: float) -> MessageRef | None:
        """The message already posted for this incident alone, or the digest that lists it (unless it
        has become urgent since: then it needs a message of its own)."""
        found = self._already_posted([inc], channel, since)
        if found is not None and found.get("digest") and urgent_severity(inc):
            return None
        return found

    def _replied(self, inc: Incident, ref: MessageRef) -> set[str]:
        assert inc.sending is not None
        try:
            return self.notifier.replied(inc.id, ref, inc.sending["since"] - SENDING_SLACK)
        except Exception as exc:
            log.info("notification_lookup_failed", error=type(exc).__name__)
            return set()

    def _post_new(self, channel: str | None, group: list[Incident], report: Report) -> None:
        """High and critical incidents get a message each, most severe first; then the rest, as
        messages of their own, or digests when more than the threshold open at once."""
        # A first post cut short (a crash or a timeout after Slack took it): look before posting again.
        waiting = []
        for inc in group:
            found = self._own_posted(inc, channel, inc.sending["since"]) if inc.sending else None
            if found is not None:
                self.store.mark_notified(inc.id, inc.version, found, len(inc.pending), notified=True)
                log.info("notification_found_posted", incident=inc.id)
            else:
                waiting.append(inc)
        urgent = sorted((i for i in waiting if urgent_severity(i)), key=lambda i: (-severity_rank(i.severity),
                                                                                  i.created_at, i.id))
        rest = [i for i in waiting if not urgent_severity(i)]
        if urgent or rest:
            self.store.note_sending([i.id for i in waiting], channel, time.time())
        for inc in urgent:
            self._post_one(channel, inc, report)
        if len(rest) > self.policy.digest_threshold:
            self._post_digest(channel, sorted(rest, key=lambda i: (-severity_rank(i.severity), -i.count, i.id)),
                              report)
        else:
            for inc in rest:
                self._post_one(channel, inc, report)

    def _post_one(self, channel: str | None, inc: Incident, report: Report) -> None:
        if not self._lease(inc.id):  # renewed before each post: a long backlog outlives one lease
            return
        since = time.time()
        try:
            ref = self._attempt(channel, lambda: self.notifier.post(inc, channel), report,
                                lambda: self._own_posted(inc, channel, since))
        except DeliveryError as exc:
            self.store.note_failure(inc.id, str(exc))
            return
        if ref is not _FAILED:
            # Follow-ups recorded before the first post are already reflected in it.
            self.store.mark_notified(inc.id, inc.version, ref, len(inc.pending), notified=True)
            report.sent += 1

    def _post_digest(self, channel: str | None, group: list[Incident], report: Report) -> None:
        since = time.time()
        try:
            ref = self._attempt(channel, lambda: self.notifier.digest(group, channel), report,
                                lambda: self._already_posted(group, channel, since))
        except DeliveryError as exc:
            for inc in group:
                self.store.note_failure(inc.id, str(exc))
            return
        if ref is not _FAILED:
            for inc in group:
                self.store.mark_notified(inc.id, inc.version, ref, len(inc.pending), notified=True)
            report.sent += 1

    def _follow_up(self, inc: Incident, report: Report) -> None:
        ref: MessageRef = inc.message or {}
        channel = ref.get("channel")
        sent_any = False
        try:
            if inc.version > inc.notified_version and self.notifier.updates_in_place and not ref.get("digest"):
                if self._attempt(channel, lambda: self.notifier.update(inc, ref), report) is _FAILED:
                    return
                sent_any = True
            done = 0
            # Replies cut short before (a crash or a timeout after Slack took them) are looked up
            # in the thread, and those already there are not sent again.
            there = self._replied(inc, ref) if inc.pending and inc.sending else set()
            if inc.pending:
                self.store.note_sending([inc.id], channel, time.time())
            for event in inc.pending:
                if str(event.get("id")) in there:
                    done += 1
                    continue
                if self._attempt(channel, lambda event=event: self.notifier.reply(inc, ref, event),
                                 report) is _FAILED:
                    break
                done += 1
                sent_any = True
        except DeliveryError as exc:
            self.store.note_failure(inc.id, str(exc))
            return
        all_sent = done == len(inc.pending)
        self.store.mark_notified(inc.id, inc.version if all_sent else inc.notified_version, None, done,
                                 notified=sent_any)
        report.sent += sent_any

    def _attempt(self, channel: str | None, send: Callable[[], T], report: Report,
                 sent_already: Callable[[], T | None] | None = None) -> T | Any:
        """Send with classified retries; the result, or _FAILED (left for a later pass).
        ``sent_already``: before a retry, whether the failed try reached Slack after all."""
        key = channel or "<default>"
        for attempt in range(self.policy.max_attempts):
            if attempt and sent_already is not None and (found := sent_already()) is not None:
                return found
            wait = self.policy.min_interval - (time.monotonic() - self._last_post.get(key, -1e9))
            if wait > 0:
                self._sleep(wait)
            try:
                result = send()
                self._last_post[key] = time.monotonic()
                return result
            except DeliveryError as exc:
                self._last_post[key] = time.monotonic()
                if not exc.retryable:
                    log.warning("notification_rejected", error=str(exc))
                    report.failed += 1
                    raise
                delay = exc.retry_after if exc.retry_after is not None else min(0.5 * 2 ** attempt, 30.0)
                log.info("notification_retry", error=str(exc), attempt=attempt + 1, wait=delay)
                if delay > self.policy.max_wait:
                    break
                self._sleep(delay)
        report.deferred += 1
        return _FAILED


_FAILED: Any = object()


def urgent_severity(inc: Incident) -> bool:
    """High and critical incidents always get a message of their own (never a digest line)."""
    return severity_rank(inc.severity) >= severity_rank("high")


def _outgrew_digest(inc: Incident) -> bool:
    """Listed in a digest as medium or low, it has since become high or critical: it gets a
    message of its own, once."""
    return bool(inc.message and inc.message.get("digest")) and urgent_severity(inc)

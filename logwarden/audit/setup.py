"""Building the audit trail from settings, and the records logwarden writes into it."""

from __future__ import annotations

import getpass
import os
import secrets as _random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from logwarden.alerts import Alert
from logwarden.audit.trail import AuditTrail, Cipher
from logwarden.errors import ConfigError
from logwarden.event import Event
from logwarden.settings import Settings
from logwarden.standard import Scorecard
from logwarden.timeutil import isoformat
from logwarden.violation import Violation


@dataclass
class Trails:
    decisions: AuditTrail
    events: AuditTrail | None
    root: Path
    key: bytes
    cipher: Cipher | None

    def seal(self) -> None:
        self.decisions.seal()
        if self.events is not None:
            self.events.seal()


def audit_key(settings: Settings) -> bytes:
    if settings.audit_key is None:
        raise ConfigError("LOGWARDEN_AUDIT_DIR needs LOGWARDEN_AUDIT_KEY (the chain's HMAC key, >= 16 bytes)")
    return settings.audit_key.get_secret_value().encode()


def cipher_of(settings: Settings) -> Cipher | None:
    if settings.audit_encryption_key is None:
        return None
    try:
        key = bytes.fromhex(settings.audit_encryption_key.get_secret_value())
    except ValueError:
        raise ConfigError("LOGWARDEN_AUDIT_ENCRYPTION_KEY must be 64 hex characters") from None
    return Cipher(key)


def build_trails(settings: Settings) -> Trails | None:
    if settings.audit_dir is None:
        return None
    key, cipher = audit_key(settings), cipher_of(settings)
    common: dict[str, Any] = {"segment_records": settings.audit_segment_records, "fsync": settings.audit_fsync,
                              "cipher": cipher}
    decisions = AuditTrail(settings.audit_dir, "decisions", key, **common)
    events = AuditTrail(settings.audit_dir, "events", key, **common) if settings.audit_events else None
    for trail in (decisions, events):
        if trail is not None:
            trail.repair()  # a crash mid-write left a torn tail: move it aside and seal
    return Trails(decisions, events, settings.audit_dir, key, cipher)


def demo_key(directory: Path) -> str:
    """The demo's own random chain key, kept beside its trail (0600)."""
    path = directory / "audit.key"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(_random.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_of(item: Any) -> tuple[str, str | None, Any]:
    """The ``(kind, event time, data)`` record of something the flow decided or saw."""
    if isinstance(item, Alert):
        return "alert", isoformat(item.start), item.to_dict()
    if isinstance(item, Violation):
        return "violation", isoformat(item.timestamp) if item.timestamp else None, item.to_dict()
    if isinstance(item, Event):
        return "event", isoformat(item.timestamp) if item.timestamp else None, item.to_dict()
    if isinstance(item, Scorecard):
        return "scorecard", None, item.to_dict()
    raise TypeError(f"no audit record for {type(item).__name__}")


REPLAYED_KINDS = ("alert", "violation", "event", "scorecard")


def replay_key(kind: str, data: Any) -> tuple[str, ...]:
    """What makes a record the same record when a restarted flow emits it again: an alert by its
    id and revision, anything else by its whole content."""
    if kind == "alert":
        return kind, str(data["alert_id"]), str(data["revision"])
    return kind, orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


LINEAGE = "audit-positions.json"


def mark_lineage(recovery_dir: Path, trails: Trails) -> None:
    """A new recovery directory starts a lineage of runs that resume one another: note where each
    trail stood then, before the first run writes anything (``lineage_position``)."""
    positions = {t.cls: t.position() for t in (trails.decisions, trails.events) if t is not None}
    tmp = recovery_dir / f"{LINEAGE}.tmp"
    with tmp.open("wb") as f:
        f.write(orjson.dumps(positions))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(recovery_dir / LINEAGE)


def lineage_position(recovery_dir: Path | None, cls: str) -> int | None:
    """Where a trail stood when the runs resuming from ``recovery_dir`` began; None without a
    recovery directory or for one made before this was noted."""
    if recovery_dir is None:
        return None
    try:
        found = orjson.loads((recovery_dir / LINEAGE).read_bytes()).get(cls)
    except FileNotFoundError:
        return None
    return int(found) if found is not None else None


class ReplayGuard:
    """Keeps a restarted flow from writing a record twice.

    Resuming from a snapshot, the flow emits again what it had emitted between that snapshot and
    the crash. The trail's position at the snapshot bounds exactly those records: the guard
    reads them once and lets each through only as often as it is not already there.

    A resumed flow need not emit them again before its next snapshot (its clocks and batches are
    not the first run's), so what is still pending at a snapshot is part of that snapshot
    (``carried``): a second crash after it must not forget a record the first run wrote.

    Bytewax snapshots a sink only at the end of an epoch in which it wrote. A sink with no
    snapshot yet, in a resumed run, has written nothing that a finished epoch holds: all it
    wrote since its runs began comes again, so ``since_seq`` is then the trail's position when
    the recovery directory was made (``lineage_position``)."""

    def __init__(self, trail: AuditTrail, since_seq: int | None,
                 carried: Iterable[tuple[tuple[str, ...], int]] = ()) -> None:
        self._pending: Counter[tuple[str, ...]] = Counter(dict((tuple(k), n) for k, n in carried))
        if since_seq is not None:
            self._pending.update(replay_key(kind, data) for kind, data in trail.records_after(since_seq)
                                 if kind in REPLAYED_KINDS)

    def fresh(self, records: list[tuple[str, str | None, Any]]) -> list[tuple[str, str | None, Any]]:
        if not self._pending:
            return records
        out = []
        for rec in records:
            key = replay_key(rec[0], rec[2])
            if self._pending[key] > 0:
                self._pending[key] -= 1
            else:
                out.append(rec)
        self._pending = +self._pending  # drop what is used up
        return out

    def pending(self) -> list[tuple[tuple[str, ...], int]]:
        """What is still expected again, to carry in a snapshot."""
        return sorted(self._pending.items())

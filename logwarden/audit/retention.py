"""Retention and purge: whole expired segments go, oldest first, and the chain stays verifiable.

A purge deletes a prefix of a class's sealed segments whose records all lie before the
retention cut-off and outside every legal hold; it first appends a ``purge`` record (chained
and keyed like any other) naming the purged range and the last hash and MAC, from which
``audit verify`` continues the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from logwarden.audit.trail import AuditTrail, segment_number, segments
from logwarden.errors import ConfigError
from logwarden.timeutil import isoformat, parse_iso


@dataclass(frozen=True)
class Hold:
    start: str  # ISO, inclusive
    end: str

    @classmethod
    def parse(cls, text: str) -> Hold:
        if text.strip().lower() == "all":
            return cls("0000", "9999")
        start, sep, end = text.partition("..")
        try:
            if not sep:
                raise ValueError
            return cls(isoformat(parse_iso(start.strip())), isoformat(parse_iso(end.strip())))
        except (ValueError, TypeError):
            raise ConfigError(f"legal hold {text!r}: use 'FROM..TO' (ISO 8601, with a zone) or 'all'") from None

    def overlaps(self, first: str, last: str) -> bool:
        return first <= self.end and self.start <= last


@dataclass
class PurgePlan:
    cls: str
    purge: list[Path]
    held: list[Path]
    keep_reason: str = ""


def _seal_of(path: Path) -> dict | None:
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln]
    if not lines:
        return None
    rec = orjson.loads(lines[-1])
    return rec if rec.get("kind") == "seal" else None


def plan(trail: AuditTrail, retention: timedelta, holds: list[Hold], now: datetime,
         per_source: dict[str, timedelta] | None = None) -> PurgePlan:
    """The oldest sealed segments past retention. With ``per_source`` (glob -> retention), a
    segment goes only when every source it holds is past its own retention (a source without a
    pattern keeps the class's)."""
    import fnmatch

    def expired(seal: dict) -> bool:
        sources = seal["data"].get("sources") or {}
        if not per_source or not sources:
            return (seal["data"]["last_at"] or seal["at"]) < isoformat(now - retention)
        for source, last in sources.items():
            keep = next((d for pat, d in per_source.items() if fnmatch.fnmatchcase(source, pat)), retention)
            if last >= isoformat(now - keep):
                return False
        return True

    segs = segments(trail.dir)
    result = PurgePlan(trail.cls, [], [])
    for seg in segs[:-1]:  # the newest segment always stays
        seal = _seal_of(seg)
        if seal is None:
            result.keep_reason = f"{seg.name} is not sealed"
            break
        first, last = seal["data"]["first_at"] or seal["at"], seal["data"]["last_at"] or seal["at"]
        if not expired(seal):
            break
        if any(h.overlaps(first, last) for h in holds):
            result.held.append(seg)
            result.keep_reason = f"{seg.name} is under legal hold"
            break  # purges stay a prefix, so the chain continues from one purge record
        result.purge.append(seg)
    return result


def apply(trail: AuditTrail, p: PurgePlan, by: str, reason: str) -> None:
    if not p.purge:
        return
    last = p.purge[-1]
    seal = _seal_of(last)
    assert seal is not None
    first_seal = _seal_of(p.purge[0])
    trail.append([("purge", None, {
        "through_segment": segment_number(last), "segments": [s.name for s in p.purge],
        "last_seq": seal["seq"], "last_hash": seal["hash"], "last_mac": seal["mac"],
        "first_at": first_seal["data"]["first_at"] if first_seal else None, "last_at": seal["data"]["last_at"],
        "by": by, "reason": reason})])
    for seg in p.purge:
        seg.unlink()


def run_retention(settings: object, by: str, dry_run: bool = False, now: datetime | None = None) -> list[str]:
    """One retention pass over every class, as configured; a line per class saying what went."""
    from logwarden.audit.setup import audit_key, cipher_of
    from logwarden.timeutil import utcnow

    root: Path | None = settings.audit_dir  # type: ignore[attr-defined]
    if root is None:
        raise ConfigError("retention needs LOGWARDEN_AUDIT_DIR (and LOGWARDEN_AUDIT_KEY)")
    holds = [Hold.parse(h) for h in settings.audit_legal_holds]  # type: ignore[attr-defined]
    key, cipher = audit_key(settings), cipher_of(settings)  # type: ignore[arg-type]
    out = []
    for cls, keep in (("events", settings.audit_retention_events),  # type: ignore[attr-defined]
                      ("decisions", settings.audit_retention_decisions)):  # type: ignore[attr-defined]
        if not (root / cls).exists():
            continue
        trail = AuditTrail(root, cls, key, cipher=cipher)
        p = plan(trail, keep, holds, now or utcnow(), dict(settings.audit_retention_sources))  # type: ignore[attr-defined]
        names = ", ".join(s.name for s in p.purge) or "nothing"
        line = f"{cls}: {'would purge' if dry_run else 'purged'} {names} (retention {keep})"
        if p.held:
            line += f"; legal hold keeps {', '.join(s.name for s in p.held)} and everything after it"
        out.append(line)
        if not dry_run:
            apply(trail, p, by, f"retention {keep}")
    return out

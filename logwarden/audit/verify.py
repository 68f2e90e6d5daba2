"""``logwarden audit verify``: recompute every chain and say precisely where one breaks."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logwarden.audit.chain import GENESIS, body_of, chain_hash, chain_mac, encode
from logwarden.audit.trail import CLASSES, HEAD_FIELDS, head_mac, segment_number, segments


@dataclass
class ClassReport:
    cls: str
    segments: int = 0
    records: int = 0
    first_at: str | None = None
    last_at: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Report:
    classes: list[ClassReport]

    @property
    def ok(self) -> bool:
        return not any(c.problems for c in self.classes)

    def lines(self) -> list[str]:
        out = []
        for c in self.classes:
            span = f"{c.first_at} .. {c.last_at}" if c.first_at else "empty"
            status = "OK" if not c.problems else f"FAILED ({len(c.problems)} problem(s))"
            out.append(f"{c.cls}: {status}: {c.segments} segment(s), {c.records} record(s), {span}")
            out += [f"  problem: {p}" for p in c.problems]
            out += [f"  warning: {w}" for w in c.warnings]
        return out


def verify(root: Path, key: bytes) -> Report:
    return Report([verify_class(root / cls, key) for cls in CLASSES if (root / cls).exists()])


def verify_class(class_dir: Path, key: bytes) -> ClassReport:
    rep = ClassReport(class_dir.name)
    segs = segments(class_dir)
    rep.segments = len(segs)
    purged = _purged(segs, key)
    expected_seq, prev_hash, prev_mac = 1, GENESIS, GENESIS
    expected_seg = 1
    if segs and segment_number(segs[0]) != 1:
        first = segment_number(segs[0])
        cover = purged.get(first - 1)
        if cover is None:
            rep.problems.append(f"segments seg-000001 .. seg-{first - 1:06d} are missing "
                                "(removed without a purge record)")
        else:
            expected_seq, prev_hash, prev_mac = cover["last_seq"] + 1, cover["last_hash"], cover["last_mac"]
        expected_seg = first
    for path in segs:
        n = segment_number(path)
        if n != expected_seg:
            rep.problems.append(f"segment(s) seg-{expected_seg:06d} .. seg-{n - 1:06d} missing before {path.name}")
        expected_seg = n + 1
        expected_seq, prev_hash, prev_mac = _verify_segment(path, key, rep, expected_seq, prev_hash, prev_mac,
                                                          last=path == segs[-1])
    _check_head(class_dir, key, rep, segs, expected_seq - 1, prev_mac)
    return rep


RECORD_FIELDS = frozenset({"at", "data", "hash", "kind", "mac", "prev", "seq"})


def _verify_segment(path: Path, key: bytes, rep: ClassReport, seq: int, prev_hash: str, prev_mac: str,
                    last: bool) -> tuple[int, str, str]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    count = 0
    sealed_at: int | None = None
    name = path.name
    for lineno, line in enumerate(lines, 1):
        where = f"{name} line {lineno}"
        try:
            rec = orjson.loads(line)
            ok_shape = isinstance(rec, dict) and rec.keys() == RECORD_FIELDS
        except orjson.JSONDecodeError:
            ok_shape = False
        if not ok_shape or encode(rec) != line + b"\n":
            rep.problems.append(f"{where}: record altered (not a canonical record: a changed byte)")
            seq += 1  # assume it took one place; resynchronise on the next record
            count += 1
            rep.records += 1
            prev_hash = prev_mac = "?"
            continue
        if sealed_at is not None:
            rep.problems.append(f"{where} (seq {rec['seq']}): record after the seal of {path.name} (inserted)")
        if rec["seq"] != seq:
            if rec["seq"] > seq:
                rep.problems.append(f"{where}: record(s) seq {seq}..{rec['seq'] - 1} missing (deleted)")
            else:
                rep.problems.append(f"{where} (seq {rec['seq']}): out of order, expected seq {seq} "
                                    "(inserted or reordered)")
        body = body_of(rec)
        chained = prev_hash == "?" or rec["prev"] == prev_hash
        if not chained and rec["seq"] == seq:
            rep.problems.append(f"{where} (seq {rec['seq']}): does not follow the previous record "
                                "(inserted or reordered)")
        if rec["hash"] != chain_hash(rec["prev"], body):
            rep.problems.append(f"{where} (seq {rec['seq']}): content changed (hash mismatch)")
        elif prev_mac != "?" and chained and not hmac.compare_digest(rec["mac"], chain_mac(key, prev_mac, body)):
            rep.problems.append(f"{where} (seq {rec['seq']}): authentication failed (changed, or a chain "
                                "rebuilt without the key)")
        if rec["kind"] == "seal":
            sealed_at = lineno
            d = rec["data"]
            if d.get("records") != count or d.get("last_seq") != rec["seq"] - 1:
                rep.problems.append(f"{where}: seal says {d.get('records')} record(s) through seq "
                                    f"{d.get('last_seq')}, the segment holds {count} through seq {rec['seq'] - 1} "
                                    "(records deleted or added)")
        else:
            count += 1
            rep.records += 1
            at = rec["at"]
            rep.first_at = min(rep.first_at or at, at)
            rep.last_at = max(rep.last_at or at, at)
        seq, prev_hash, prev_mac = rec["seq"] + 1, rec["hash"], rec["mac"]
    if torn:
        msg = f"{path.name}: torn tail of {len(torn)} bytes after line {len(lines)} (a crash mid-write)"
        if last:
            rep.problems.append(msg + "; the next start moves it aside and seals the segment")
        else:
            rep.problems.append(msg + " in a segment that is not the last (truncated or altered)")
    if sealed_at is None and not last:
        rep.problems.append(f"{path.name}: not sealed, but later segments exist (its end was removed)")
    return seq, prev_hash, prev_mac


def _check_head(class_dir: Path, key: bytes, rep: ClassReport, segs: list[Path], last_seq: int, last_mac: str) -> None:
    head_path = class_dir / "HEAD"
    if not head_path.exists():
        if segs:
            rep.problems.append("HEAD is missing")
        return
    raw = head_path.read_bytes()
    try:
        head = orjson.loads(raw)
        valid = (isinstance(head, dict) and set(head) == {*HEAD_FIELDS, "head_mac"}
                 and orjson.dumps(head, option=orjson.OPT_SORT_KEYS) == raw
                 and hmac.compare_digest(head["head_mac"], head_mac(key, head)))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        valid = False
    if not valid:
        rep.problems.append("HEAD altered (authentication failed)")
        return
    if head["seq"] > last_seq:
        where = f"segment {head['segment']}" if not any(p.name == head["segment"] for p in segs) else "the end"
        rep.problems.append(f"records seq {last_seq + 1}..{head['seq']} missing at {where} (truncated or removed)")
    elif head["seq"] < last_seq:
        rep.warnings.append(f"records after HEAD (seq {head['seq'] + 1}..{last_seq}): written just before a crash")
    elif head["mac"] != last_mac and last_mac != "?":
        rep.problems.append("the last record is not the one HEAD names (replaced)")


def _purged(segs: list[Path], key: bytes) -> dict[int, dict[str, Any]]:
    """Segment number -> what a purge record says about the last purged segment up to it."""
    out: dict[int, dict[str, Any]] = {}
    for path in segs:
        for line in path.read_bytes().split(b"\n"):
            if b'"kind":"purge"' not in line:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            data = rec.get("data", {})
            if rec.get("kind") == "purge" and isinstance(data, dict) and "through_segment" in data:
                out[int(data["through_segment"])] = data
    return out

"""Writing the audit trail: segment files, seals, a keyed HEAD, locking, fsync, crash repair.

Layout: ``<root>/<class>/seg-000001.jsonl`` ... and ``<root>/<class>/HEAD`` per data class
(``events``: normalized, redacted events; ``decisions``: violations, alerts, incident changes,
silences, rule-set versions, scorecards, access records). Each segment ends with a ``seal``
record (its record count, first and last seq, time range). ``HEAD`` names the last record
written, keyed like the chain, so removing records or whole segments at the end is detected.

Several processes may append (the flow, the incident commands): appends take an exclusive
``flock`` on the class directory. Files are created 0600 in 0700 directories.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from logwarden.audit.chain import GENESIS, chain_mac, encode, make_record
from logwarden.errors import ConfigError

CLASSES = ("events", "decisions")
FsyncPolicy = Literal["always", "seal", "never"]
SEGMENT_RE = "seg-{:06d}.jsonl"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def segment_number(path: Path) -> int:
    return int(path.name[4:10])


def segments(class_dir: Path) -> list[Path]:
    return sorted((p for p in class_dir.glob("seg-*.jsonl") if p.name[4:10].isdigit()), key=segment_number)


HEAD_FIELDS = ("class", "hash", "mac", "sealed", "segment", "seq")


def head_mac(key: bytes, head: dict[str, Any]) -> str:
    """The HEAD's own MAC, over every field it has besides this one."""
    fields = {k: head[k] for k in HEAD_FIELDS}
    return chain_mac(key, "HEAD", orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))


@dataclass
class _State:
    segment: int
    seq: int
    hash: str
    mac: str
    sealed: bool  # is the current segment sealed (the next record starts a new one)
    records_in_segment: int
    first_seq: int | None
    first_at: str | None
    last_at: str | None
    sources: dict[str, str] | None = None  # source -> newest record time, for per-source retention

    def chained(self, seq: int, hash_: str, mac: str) -> None:
        self.seq, self.hash, self.mac = seq, hash_, mac

    def counted(self, seq: int, at: str, source: str | None) -> None:
        """One more record (not a seal) in the current segment."""
        self.records_in_segment += 1
        self.first_seq = self.first_seq if self.first_seq is not None else seq
        self.first_at = min(self.first_at or at, at)
        self.last_at = max(self.last_at or at, at)
        if source is not None:
            self.sources = self.sources or {}
            self.sources[source] = max(self.sources.get(source, at), at)

    def copy(self) -> _State:
        return replace(self, sources=dict(self.sources) if self.sources is not None else None)


@dataclass(frozen=True)
class _Read:
    """How far ``_load_state`` read the newest segment, and the state there: the next load reads
    only what was appended since (by this process or another), so an append costs its own
    records, not the whole segment's again."""

    segment: int
    inode: int
    end: int  # bytes of complete lines read
    last_line: bytes  # the line ending at ``end``, checked again before trusting the rest
    state: _State


def _source_of(data: Any) -> str | None:
    """The log source a record is about (events: log.file.path; violations: source)."""
    if isinstance(data, dict):
        source = data.get("log.file.path") or data.get("source")
        return str(source) if source else None
    return None


class Cipher:
    """Optional authenticated encryption of each record's data (AES-256-GCM)."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ConfigError("LOGWARDEN_AUDIT_ENCRYPTION_KEY must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)

    def seal(self, data: Any, seq: int) -> dict[str, str]:
        import base64

        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, orjson.dumps(data), str(seq).encode())
        return {"enc": base64.b64encode(nonce + ct).decode()}

    def open(self, data: Any, seq: int) -> Any:
        import base64

        if not (isinstance(data, dict) and set(data) == {"enc"}):
            return data
        raw = base64.b64decode(data["enc"])
        return orjson.loads(self._aead.decrypt(raw[:12], raw[12:], str(seq).encode()))


class AuditTrail:
    """Appends records of one data class. Open it once per process; ``close()`` seals."""

    def __init__(self, root: Path, cls: str, key: bytes, *, segment_records: int = 50_000,
                 fsync: FsyncPolicy = "seal", cipher: Cipher | None = None) -> None:
        if cls not in CLASSES:
            raise ConfigError(f"unknown audit class {cls!r}; known: {CLASSES}")
        if len(key) < 16:
            raise ConfigError("LOGWARDEN_AUDIT_KEY must be at least 16 bytes")
        self.dir = root / cls
        self.cls, self.key = cls, key
        self.segment_records, self.fsync, self.cipher = segment_records, fsync, cipher
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        os.chmod(self.dir, 0o700)
        self._lock_path = self.dir / ".lock"
        self._read: _Read | None = None

    @contextmanager
    def _locked(self) -> Iterator[_State]:
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._load_state()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- public --------------------------------------------------------------------------------
    def append(self, items: list[tuple[str, str | None, Any]]) -> int:
        """Append ``(kind, event time or None, data)`` records; returns the last seq written."""
        if not items:
            return -1
        with self._locked() as st:
            out = bytearray()
            for kind, at, data in items:
                if st.sealed or st.records_in_segment >= self.segment_records:
                    self._flush(st, out)
                    if not st.sealed:
                        self._seal(st)
                    st = self._next_segment(st)
                out += self._record(st, kind, at or now_iso(), data)
            self._flush(st, out)
            self._write_head(st)
            return st.seq

    def seal(self) -> None:
        """Seal the current segment (end of a run); the next record starts a new one."""
        with self._locked() as st:
            if not st.sealed and st.records_in_segment:
                self._seal(st)
                self._write_head(st)

    def repair(self) -> str | None:
        """A crash mid-write left a torn last line: move it aside, record it, seal. What was done."""
        with self._locked() as st:
            path = self._path(st.segment)
            if not path.exists():
                return None
            raw = path.read_bytes()
            if not raw or raw.endswith(b"\n"):
                return None
            cut = raw.rfind(b"\n") + 1
            torn = raw[cut:]
            aside = path.with_suffix(".torn")
            with open(aside, "ab") as f:
                f.write(torn)
            os.chmod(aside, 0o600)
            with open(path, "r+b") as f:
                f.truncate(cut)
            st = self._load_state()
            import hashlib

            note = {"segment": path.name, "torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest(),
                    "moved_to": aside.name}
            out = self._record(st, "repair", now_iso(), note)
            self._flush(st, bytearray(out))
            self._seal(st)
            self._write_head(st)
            return f"{self.cls}/{path.name}: torn tail of {len(torn)} bytes moved to {aside.name}; segment sealed"

    def position(self) -> int:
        """The seq of the last record written (0 for an empty trail), from HEAD."""
        try:
            return int(orjson.loads((self.dir / "HEAD").read_bytes())["seq"])
        except FileNotFoundError:
            return 0

    def records_after(self, seq: int) -> Iterator[tuple[str, Any]]:
        """``(kind, data)`` of every record after ``seq``, oldest first, decrypted; read from the
        newest segments back only as far as needed."""
        found: list[list[dict[str, Any]]] = []
        for path in reversed(segments(self.dir)):
            recs = [orjson.loads(ln) for ln in path.read_bytes().split(b"\n") if ln.endswith(b"}")]
            found.append([r for r in recs if r["seq"] > seq])
            if recs and recs[0]["seq"] <= seq:
                break
        for recs in reversed(found):
            for r in recs:
                data = r["data"]
                if self.cipher is not None and r["kind"] not in ("seal", "purge"):
                    data = self.cipher.open(data, r["seq"])
                yield r["kind"], data

    # -- internals -----------------------------------------------------------------------------
    def _path(self, n: int) -> Path:
        return self.dir / SEGMENT_RE.format(n)

    def _record(self, st: _State, kind: str, at: str, data: Any) -> bytes:
        seq = st.seq + 1
        stored = self.cipher.seal(data, seq) if self.cipher is not None and kind not in ("seal", "purge") else data
        rec = make_record(self.key, seq, at, kind, stored, st.hash, st.mac)
        st.chained(seq, rec["hash"], rec["mac"])
        if kind != "seal":
            st.counted(seq, at, _source_of(data))
        return encode(rec)

    def _flush(self, st: _State, out: bytearray) -> None:
        if not out:
            return
        path = self._path(st.segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, bytes(out))
            if self.fsync == "always":
                os.fsync(fd)
            written = os.fstat(fd)  # under the lock: no other writer appended meanwhile
        finally:
            os.close(fd)
        last = bytes(out[out.rfind(b"\n", 0, len(out) - 1) + 1:-1])
        self._read = _Read(st.segment, written.st_ino, written.st_size, last, st.copy())  # our records: not read back
        out.clear()

    def _seal(self, st: _State) -> None:
        data = {"segment": self._path(st.segment).name, "records": st.records_in_segment,
                "first_seq": st.first_seq, "last_seq": st.seq, "first_at": st.first_at, "last_at": st.last_at,
                "sources": st.sources or {}}
        line = self._record(st, "seal", now_iso(), data)
        path = self._path(st.segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            if self.fsync != "never":
                os.fsync(fd)
        finally:
            os.close(fd)
        st.sealed = True

    def _next_segment(self, st: _State) -> _State:
        return _State(st.segment + 1, st.seq, st.hash, st.mac, False, 0, None, None, None, None)

    def _write_head(self, st: _State) -> None:
        head = {"class": self.cls, "segment": self._path(st.segment).name, "seq": st.seq, "hash": st.hash,
                "mac": st.mac, "sealed": st.sealed}
        head["head_mac"] = head_mac(self.key, head)
        tmp = self.dir / "HEAD.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, orjson.dumps(head, option=orjson.OPT_SORT_KEYS))
            if self.fsync != "never":
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "HEAD")

    def _load_state(self) -> _State:
        """The state at the end of the newest segment's complete lines (a torn tail is not part of
        it), read on from where the last load stopped when the file is still the one read then."""
        segs = segments(self.dir)
        if not segs:
            self._read = None
            return _State(1, 0, GENESIS, GENESIS, False, 0, None, None, None)
        last, number = segs[-1], segment_number(segs[-1])
        with open(last, "rb") as f:
            inode, read = os.fstat(f.fileno()).st_ino, self._read
            if read is not None and (read.segment, read.inode) == (number, inode) and _ends_with(f, read):
                st, start = read.state.copy(), read.end
            else:
                st, start = None, 0
            f.seek(start)
            new = f.read()
        cut = new.rfind(b"\n") + 1
        lines = [ln for ln in new[:cut].split(b"\n") if ln]
        if st is None:
            prev = self._tail_of(segs[-2]) if not lines and len(segs) > 1 else None
            st = _State(number, 0, GENESIS, GENESIS, False, 0, None, None, None)
            if prev is not None:  # an empty newest segment: the chain goes on from the one before
                st.chained(prev["seq"], prev["hash"], prev["mac"])
        for line in lines:
            rec = orjson.loads(line)
            st.chained(rec["seq"], rec["hash"], rec["mac"])
            st.sealed = rec["kind"] == "seal"
            if not st.sealed:
                data = self.cipher.open(rec["data"], rec["seq"]) if self.cipher else rec["data"]
                st.counted(rec["seq"], rec["at"], _source_of(data))
        tail = lines[-1] if lines else read.last_line if read is not None and start else b""
        self._read = _Read(number, inode, start + cut, tail, st.copy())
        return st

    @staticmethod
    def _tail_of(path: Path) -> dict[str, Any] | None:
        lines = [ln for ln in path.read_bytes().split(b"\n") if ln]
        return orjson.loads(lines[-1]) if lines else None


def _ends_with(f: Any, read: _Read) -> bool:
    """Does the open file still hold, just before ``read.end``, the line read there?"""
    if read.end == 0:
        return True
    size = os.fstat(f.fileno()).st_size
    want = read.last_line + b"\n"
    if size < read.end or read.end < len(want):
        return False
    f.seek(read.end - len(want))
    return bool(f.read(len(want)) == want)

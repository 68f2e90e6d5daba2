"""``logwarden evidence``: a bundle an auditor can check without logwarden.

Contents: the matching records (``records/<class>.jsonl``), the sealed segments that hold them
(``segments/<class>/``: the chain proofs), the incidents and their history, the rule files in
force, the compliance scorecards of the period, ``verify_chain.py`` (stdlib only), a README,
and ``MANIFEST.sha256`` (``sha256sum -c MANIFEST.sha256``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from logwarden.audit.search import Query, seal_of
from logwarden.audit.trail import CLASSES, Cipher, segments
from logwarden.incidents.model import Incident
from logwarden.timeutil import isoformat

README = """# logwarden evidence bundle

Period: {start} .. {end}{filters}
Exported {exported} by {by}; rule set version {ruleset}.

| file | what |
|---|---|
| records/decisions.jsonl | the matching decision records (violations, alerts, incident changes, runs, scorecards) |
| records/events.jsonl | the matching normalized, redacted events |
| readable/ | the same records with their data decrypted (only when the archive is encrypted at rest) |
| segments/<class>/seg-*.jsonl | the sealed archive segments that hold them: the chain proofs |
| incidents.jsonl | the incidents of the period with their history (who did what, when) |
| scorecards.jsonl | the compliance scorecards recorded in the period |
| rules/ | the rule files and the model card in force |
| verify_chain.py | the chain check, Python standard library only |
| MANIFEST.sha256 | SHA-256 of every other file |

## How to check it

1. Nothing was changed since the export:

       sha256sum -c MANIFEST.sha256

2. The records are authentic parts of the archive's hash chain, in order, none missing within
   a segment, and every selected record stands in a sealed segment:

       python3 verify_chain.py .

   Each record's `hash` is SHA-256 of its `prev` followed by the record's line with its
   `hash`, `mac` and `prev` fields removed; each `prev` is the previous record's `hash`; each
   segment ends with a `seal` record that counts its records. The `mac` fields are keyed
   HMACs that the operator checks with `logwarden audit verify` (the key stays with them).
"""


Selection = Query  # an export takes the questions ``audit search`` answers


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            yield line, orjson.loads(line)


def export(root: Path, out: Path, sel: Query, by: str, incidents: list[Incident], rule_files: list[Path],
           ruleset: str, cipher: Cipher | None = None) -> tuple[Path, int]:
    """Write the bundle to ``out`` (a directory, or a .zip); return it and the record count."""
    work = Path(tempfile.mkdtemp(prefix="lw-evidence-"))
    os.chmod(work, 0o700)
    try:
        total = 0
        scorecards: list[bytes] = []
        for cls in CLASSES:
            chosen, readable, segs_used = [], [], []
            for seg in segments(root / cls):
                if cls not in sel.classes or not sel.may_hold(seal_of(seg)):
                    continue  # its seal rules it out (outside the period, other sources): not read at all
                hit = False
                for line, rec in _records(seg):
                    data = cipher.open(rec["data"], rec["seq"]) if cipher is not None else rec["data"]
                    if sel.wants(rec["kind"], rec["at"], data):
                        chosen.append(line)
                        readable.append(orjson.dumps({**rec, "data": data}, option=orjson.OPT_SORT_KEYS).decode())
                        hit = True
                        if rec["kind"] == "scorecard":
                            scorecards.append(orjson.dumps(data))
                if hit:
                    segs_used.append(seg)
            if not chosen:
                continue
            total += len(chosen)
            _write(work / "records" / f"{cls}.jsonl", "\n".join(chosen) + "\n")
            if cipher is not None:
                _write(work / "readable" / f"{cls}.jsonl", "\n".join(readable) + "\n")
            for seg in segs_used:
                _copy(seg, work / "segments" / cls / seg.name)
        wanted = [i for i in incidents if isoformat(sel.start) <= i.last_seen and i.first_seen <= isoformat(sel.end)
                  and (sel.rule is None or sel.rule in i.rule_stats())
                  and (sel.entity is None or sel.entity in i.all_entities())]
        _write(work / "incidents.jsonl", "".join(orjson.dumps(i.public()).decode() + "\n" for i in wanted))
        _write(work / "scorecards.jsonl", "".join(s.decode() + "\n" for s in scorecards))
        for f in rule_files:
            if f.is_file():
                _copy(f, work / "rules" / f.name)
        _write(work / "verify_chain.py", resources.files("logwarden.audit").joinpath("verify_chain.py").read_text())
        filters = "".join(f"; {k} {v}" for k, v in (("entity", sel.entity), ("user", sel.user),
                                                    ("resource", sel.resource), ("source", sel.source),
                                                    ("scope", sel.scope), ("action", sel.action),
                                                    ("outcome", sel.outcome), ("rule", sel.rule)) if v)
        _write(work / "README.md", README.format(start=isoformat(sel.start), end=isoformat(sel.end), filters=filters,
                                                 exported=isoformat(datetime.now(sel.start.tzinfo)), by=by,
                                                 ruleset=ruleset or "unknown"))
        manifest = []
        for path in sorted(p for p in work.rglob("*") if p.is_file()):
            rel = path.relative_to(work).as_posix()
            manifest.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
        _write(work / "MANIFEST.sha256", "".join(manifest))
        return _place(work, out), total
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _copy(src: Path, dst: Path) -> None:
    _write(dst, src.read_text(encoding="utf-8"))


def _place(work: Path, out: Path) -> Path:
    if out.suffix == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(p for p in work.rglob("*") if p.is_file()):
                z.write(path, path.relative_to(work).as_posix())
        return out
    if out.exists() and any(out.iterdir()):
        from logwarden.errors import LogwardenError

        raise LogwardenError(f"{out} exists and is not empty; choose a new directory or a .zip")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in work.rglob("*"):
        target = out / path.relative_to(work)
        if path.is_dir():
            target.mkdir(exist_ok=True, mode=0o700)
        else:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, target)
            os.chmod(target, 0o600)
    return out

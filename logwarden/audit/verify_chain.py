#!/usr/bin/env python3
"""Check an evidence bundle's chain proofs with nothing but Python's standard library.

Usage: python3 verify_chain.py [BUNDLE_DIR]

For every segment in segments/<class>/: each record's hash is SHA-256(prev + body), where body is
the record's line with its "hash", "mac" and "prev" fields removed; each record's prev is the
previous record's hash; the seal at the end counts the segment's records. Consecutive segments
must link. Every line of records/<class>.jsonl must appear in its class's segments.
(The "mac" fields need logwarden's key: run `logwarden audit verify` on the archive for those.)
"""

import hashlib
import json
import sys
from pathlib import Path


def body(line: str, rec: dict) -> str:
    for name in ("hash", "mac", "prev"):
        line = line.replace(f',"{name}":"{rec[name]}"', "", 1)
    return line


def check_segment(path: Path, problems: list) -> tuple:
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[-1] != "":
        problems.append(f"{path}: torn last line")
    lines = [ln for ln in lines if ln]
    prev = None
    first_prev = None
    count = 0
    for n, line in enumerate(lines, 1):
        rec = json.loads(line)
        if first_prev is None:
            first_prev = rec["prev"]
        if prev is not None and rec["prev"] != prev:
            problems.append(f"{path} line {n}: does not follow the previous record")
        digest = hashlib.sha256((rec["prev"] + body(line, rec)).encode("utf-8")).hexdigest()
        if digest != rec["hash"]:
            problems.append(f"{path} line {n}: hash mismatch (content changed)")
        if rec["kind"] == "seal":
            if rec["data"]["records"] != count:
                problems.append(f"{path}: seal counts {rec['data']['records']} records, found {count}")
        else:
            count += 1
        prev = rec["hash"]
    if not lines or json.loads(lines[-1])["kind"] != "seal":
        problems.append(f"{path}: not sealed")
    return first_prev, prev, set(lines)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems: list = []
    checked = 0
    for class_dir in sorted((root / "segments").iterdir()) if (root / "segments").exists() else []:
        seen: set = set()
        last_hash, last_num = None, None
        for seg in sorted(class_dir.glob("seg-*.jsonl")):
            num = int(seg.name[4:10])
            first_prev, end_hash, lines = check_segment(seg, problems)
            if last_num is not None and num == last_num + 1 and first_prev != last_hash:
                problems.append(f"{seg}: does not link to {class_dir.name}/seg-{last_num:06d}.jsonl")
            last_hash, last_num = end_hash, num
            seen |= lines
            checked += 1
        selected = root / "records" / f"{class_dir.name}.jsonl"
        if selected.exists():
            for n, line in enumerate(selected.read_text(encoding="utf-8").splitlines(), 1):
                if line not in seen:
                    problems.append(f"{selected} line {n}: not found in the sealed segments")
    for p in problems:
        print("FAIL", p)
    print(f"{'FAILED' if problems else 'OK'}: {checked} segment(s) checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

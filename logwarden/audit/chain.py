"""The record format and chain arithmetic, shared by the writer, the verifier and (copied into
every evidence bundle, stdlib only) the auditor's checker.

A record is one JSON line with sorted keys and no spaces:
    {"at": ..., "data": ..., "hash": ..., "kind": ..., "mac": ..., "prev": ..., "seq": ...}
- ``body`` = the canonical JSON of {at, data, kind, seq};
- ``hash`` = SHA-256(prev + body): a plain chain anyone can recompute (order, completeness);
- ``mac``  = HMAC-SHA256(key, previous mac + body): only the key holder can forge it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

GENESIS = "0" * 64


def body_of(rec: dict[str, Any]) -> bytes:
    """Equal, byte for byte, to the record's line with its hash, mac and prev fields removed
    (keys are sorted), so a checker without orjson can take the body from the raw line."""
    return orjson.dumps({"at": rec["at"], "data": rec["data"], "kind": rec["kind"], "seq": rec["seq"]},
                        option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


_KEYED: dict[bytes, Any] = {}  # key -> an HMAC with the key's pads applied, copied per record


def chain_mac(key: bytes, prev_mac: str, body: bytes) -> str:
    keyed = _KEYED.get(key)
    if keyed is None:
        keyed = _KEYED[key] = hmac.new(key, digestmod=hashlib.sha256)
    h = keyed.copy()  # the key schedule once per key, not per record
    h.update(prev_mac.encode() + body)
    return h.hexdigest()


def make_record(key: bytes, seq: int, at: str, kind: str, data: Any, prev_hash: str, prev_mac: str) -> dict[str, Any]:
    rec = {"seq": seq, "at": at, "kind": kind, "data": data}
    body = body_of(rec)
    rec["prev"] = prev_hash
    rec["hash"] = chain_hash(prev_hash, body)
    rec["mac"] = chain_mac(key, prev_mac, body)
    return rec


def encode(rec: dict[str, Any]) -> bytes:
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) + b"\n"

"""Secret detection and redaction for raw log lines.

Two kinds of detector: gitleaks' community rules (``data/secrets/gitleaks.toml``, 220-odd token
formats of cloud and SaaS providers, MIT, loaded by ``logwarden.secrets.gitleaks``) and our own
structural ones (``logwarden.secrets.structural``: URL passwords, credential-named parameters and
JSON keys, Authorization headers, private key blocks).

Fast because almost no line holds a secret: one Aho-Corasick pass (ahocorasick_rs) over a whole
batch finds every detector keyword and so the candidate lines and the detectors to try on each;
only those detectors' regexes run on those lines (google-re2 for gitleaks' RE2-syntax rules); the
entropy and allow-list checks run only on what matched. Measured in ``benchmarks/bench_secrets.py``.

Redaction runs on the raw line *before* parsing, so no later stage (events, violations, alerts,
Slack, Redis, the audit trail, our own logs) can see the secret. Each secret becomes
``[REDACTED:<rule id>]``; where two detectors find overlapping text, a provider's format names it
before our structural detectors, and those before gitleaks' generic rule. A JSON line stays valid
JSON with the same structure (values are rewritten inside their strings).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import ahocorasick_rs
import numpy as np
import orjson

from logwarden.secrets import gitleaks
from logwarden.secrets.structural import DETECTORS, MARKER_PREFIX

# gitleaks' own private-key rule needs the whole block on one line; ours also takes a block's first
# line (the block goes on over the next lines) and stops at the end of a JSON string.
REPLACED = {"private-key": "replaced by logwarden's structural detector of the same name"}
# Secret kinds' names before the gitleaks rule set (profiles written for 0.1 still load).
OLD_NAMES = {
    "private_key": "private-key", "aws_access_key_id": "aws-access-token", "github_token": "github-pat",
    "stripe_key": "stripe-access-token", "slack_token": "slack-bot-token", "bearer_token": "bearer-token",
    "url_password": "url-password", "aws_session_token": "aws-session-token", "password_param": "credential-param",
}


class Detector(Protocol):
    id: str
    keywords: tuple[str, ...]
    priority: int

    def find(self, line: str, at: list[int]) -> Any:
        """Spans of the secrets in ``line``; ``at``: where the keyword pass found its keywords
        (positions in the lowercased line: the same as in the line unless lower() changed a
        length, which only non-ASCII capitals do)."""


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str  # the line with every secret replaced by its marker
    kinds: tuple[str, ...]  # the rule ids found, each once, in the order of the line


def _data(name: str) -> Path:
    return Path(str(resources.files("logwarden").joinpath(f"data/secrets/{name}")))


class Redactor:
    """Every detector behind one keyword automaton. Build once (``load``); ``redact_batch`` is
    the hot path."""

    def __init__(self, detectors: Sequence[Detector], skipped: dict[str, str] | None = None,
                 sources: Sequence[str] = ()) -> None:
        self.detectors = tuple(detectors)
        self.skipped = dict(skipped or {})
        self.sources = tuple(sources)
        by_keyword: dict[str, list[int]] = {}
        self._always: tuple[int, ...] = ()
        for i, d in enumerate(self.detectors):
            if not d.keywords:
                self._always += (i,)
            for k in d.keywords:
                by_keyword.setdefault(k, []).append(i)
        self._keywords = list(by_keyword)
        self._targets = [tuple(by_keyword[k]) for k in self._keywords]
        # a detector's cheap check of the whole line, asked once per candidate line before any
        # line is redacted
        self._gates = {i: gate for i, d in enumerate(self.detectors) if (gate := getattr(d, "gate", None))}
        # A keyword whose every detector needs one more text in the line ("://" is in most web
        # lines, a URL password also needs an "@"): its matches count only in lines holding it,
        # which one search of the whole batch tells.
        required = [needed.pop() if len(needed := {getattr(self.detectors[d], "requires", None) for d in t}) == 1
                    else None for t in self._targets]  # per keyword: the one text all its detectors need
        self._requires = sorted({text for text in required if text})
        self._keyword_requires = np.array([self._requires.index(text) if text else -1 for text in required],
                                          dtype=np.intp)
        self._free, self._boundary, self._after = self._keyword_context()
        self._reach, self._runs = self._keyword_reach()
        self._automaton = ahocorasick_rs.AhoCorasick(
            self._keywords, implementation=ahocorasick_rs.Implementation.DFA)
        # An ASCII batch (almost every one) is searched as bytes: its offsets are its characters',
        # and the str automaton's translation of byte offsets to characters costs 3x the search.
        # A keyword whose detectors need one more text is searched only in a batch holding that
        # text: the "://" of the URL password detector is in nearly every web log line, its "@"
        # in few batches.
        self._searches: list[tuple[bytes | None, Any, np.ndarray]] = []  # (text needed, automaton, keywords)
        for need in range(-1, len(self._requires)):  # -1: the keywords that need nothing more
            ks = np.flatnonzero(self._keyword_requires == need)
            if len(ks):
                automaton = ahocorasick_rs.BytesAhoCorasick([self._keywords[k].encode() for k in ks],
                                                            implementation=ahocorasick_rs.Implementation.DFA)
                self._searches.append((self._requires[need].encode() if need >= 0 else None, automaton, ks))

    def _keyword_context(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a keyword match needs around it for any of its detectors to match there, known
        per keyword from the detectors' own patterns: (matches kept whatever surrounds them,
        kept at a word boundary (``word_start``), kept by the byte after them (``follows``))."""
        n = len(self._keywords)
        free = np.zeros(n, dtype=bool)
        boundary = np.zeros(n, dtype=bool)
        after = np.zeros((n, 256), dtype=bool)
        after[:, ord("\n")] = True  # a line's end: never judged here
        for k, (keyword, targets) in enumerate(zip(self._keywords, self._targets, strict=True)):
            for d in targets:
                detector = self.detectors[d]
                follows = getattr(detector, "follows", None)
                if follows is not None and keyword in follows:
                    after[k, list(follows[keyword])] = True
                elif getattr(detector, "word_start", False):
                    boundary[k] = True
                else:
                    free[k] = True
        return free, boundary, after

    def _keyword_reach(self) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
        """Per keyword, the ``Reach`` its every detector shares (its index in the second list,
        as (most, run bytes, then bytes) tables), or -1."""
        reaches: list[Any] = []
        index = np.full(len(self._keywords), -1, dtype=np.intp)
        for k, (keyword, targets) in enumerate(zip(self._keywords, self._targets, strict=True)):
            found = {(getattr(self.detectors[d], "reach", None) or {}).get(keyword) for d in targets}
            if len(found) == 1 and (reach := found.pop()) is not None:
                if reach not in reaches:
                    reaches.append(reach)
                index[k] = reaches.index(reach)
        tables = []
        for reach in reaches:
            run = np.zeros(256, dtype=bool)
            run[list(reach.run)] = True
            run[ord("\n")] = False  # a line's end ends the run (a match is within its line)
            then = np.zeros(256, dtype=bool)
            then[list(reach.then)] = True
            tables.append((reach.most, run, then))
        return index, tables

    def _in_context(self, data: bytes, flat: np.ndarray) -> np.ndarray:
        """Which keyword matches (keyword, start, end) of an ASCII batch one of their detectors
        could match at: the rest are dropped before any Python runs for them."""
        keywords, start, end = flat[:, 0], flat[:, 1], flat[:, 2]
        text = np.frombuffer(data + b"\n", dtype=np.uint8)  # a batch's last line ends too
        keep = self._free[keywords] | self._after[keywords, text[end]]
        ask = ~keep & self._boundary[keywords]
        if ask.any():
            before = np.where(start[ask] > 0, text[start[ask] - 1], ord("\n"))
            keep[ask] = _WORD_BYTE[before] != _WORD_BYTE[text[start[ask]]]
        reach = self._reach[keywords]
        for j, (most, run, then) in enumerate(self._runs):
            at = np.flatnonzero(keep & (reach == j))
            if len(at):  # the run after each keyword, and the byte that ends it
                window = text[np.minimum(end[at, None] + np.arange(most + 1), len(text) - 1)]
                stops = ~run[window]
                first = stops.argmax(axis=1)
                keep[at] = stops.any(axis=1) & then[window[np.arange(len(at)), first]]
        return keep

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.detectors)

    def redact(self, line: str) -> Redaction | None:
        """The redacted line and what was found, or None when the line is clean."""
        return self.redact_batch([line])[0]

    def redact_batch(self, lines: Sequence[str]) -> list[Redaction | None]:
        out: list[Redaction | None] = [None] * len(lines)
        for i, candidates in self._candidates(lines).items():
            out[i] = self._redact_line(lines[i], candidates)
        return out

    def _candidates(self, lines: Sequence[str]) -> dict[int, dict[int, list[int]]]:
        """Line index -> {detector to try there: where its keywords start in the line}, from one
        keyword pass over the whole batch."""
        found = self._keyword_candidates(lines)
        for i in range(len(lines)) if self._always else ():
            for d in self._always:
                found.setdefault(i, {}).setdefault(d, [])
        return found

    def _keyword_candidates(self, lines: Sequence[str]) -> dict[int, dict[int, list[int]]]:
        if not lines:
            return {}
        lowered = "\n".join(lines).lower()
        data = None
        if lowered.isascii():  # lower() kept every length; bytes offsets are characters'
            starts = _starts(lines)
            data = lowered.encode("ascii")
            flat = self._bytes_matches(data)
        else:
            starts, matches = self._unicode_matches(lines, lowered)
            flat = np.fromiter(chain.from_iterable(matches), dtype=np.int64, count=3 * len(matches)).reshape(-1, 3)
        if not len(flat):
            return {}
        if data is not None:  # (the detectors ask it themselves of other batches)
            flat = flat[self._in_context(data, flat)]
            if not len(flat):
                return {}
        rows = np.searchsorted(starts, flat[:, 1], side="right") - 1
        if data is not None and self._requires:
            keep = self._holding_required(data, starts, flat[:, 0], rows)
            flat, rows = flat[keep], rows[keep]
        offsets = (flat[:, 1] - starts[rows]).tolist()
        found: dict[int, dict[int, list[int]]] = {}
        targets = self._targets
        for k, i, at in zip(flat[:, 0].tolist(), rows.tolist(), offsets, strict=True):
            line = found.get(i)
            if line is None:
                line = found[i] = {}
            for d in targets[k]:
                line.setdefault(d, []).append(at)
        gates = self._gates
        for i in [i for i, at in found.items() if not gates.keys().isdisjoint(at)]:
            at = found[i]
            for d in [d for d in at if d in gates and not gates[d](lines[i])]:
                del at[d]
            if not at:
                del found[i]
        return found

    def _bytes_matches(self, data: bytes) -> np.ndarray:
        """Every keyword match (keyword, start, end) in an ASCII batch, but those of keywords
        whose detectors need a text the batch does not hold."""
        found = []
        for need, automaton, keywords in self._searches:
            if need is not None and need not in data:
                continue
            matches = automaton.find_matches_as_indexes(data, overlapping=True)
            if matches:
                flat = np.fromiter(chain.from_iterable(matches), dtype=np.int64, count=3 * len(matches)).reshape(-1, 3)
                flat[:, 0] = keywords[flat[:, 0]]
                found.append(flat)
        return np.concatenate(found) if len(found) > 1 else found[0] if found else np.zeros((0, 3), dtype=np.int64)

    def _holding_required(self, data: bytes, starts: np.ndarray, keywords: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Which keyword matches are in a line holding what their detectors require."""
        need = self._keyword_requires[keywords]
        keep = need < 0
        for j, text in enumerate(self._requires):
            if not (need == j).any():
                continue
            at = np.fromiter((m.start() for m in re.finditer(re.escape(text.encode()), data)), dtype=np.int64)
            holding = np.zeros(len(starts), dtype=bool)
            holding[np.searchsorted(starts, at, side="right") - 1] = True
            keep |= (need == j) & holding[rows]
        return keep

    def _unicode_matches(self, lines: Sequence[str], lowered: str) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Where each line starts in the lowered batch, and the keywords found in it."""
        if len(lowered) != sum(map(len, lines)) + len(lines) - 1:  # a Unicode capital lowered to two characters
            lines = [line.lower() for line in lines]
            lowered = "\n".join(lines)
        return _starts(lines), self._automaton.find_matches_as_indexes(lowered, overlapping=True)

    def _redact_line(self, line: str, candidates: dict[int, list[int]]) -> Redaction | None:
        spans: list[tuple[int, int, int, str]] = []
        for d, at in candidates.items():
            detector = self.detectors[d]
            for start, end in detector.find(line, at):
                while start < end and line[start] in _QUOTES:  # a quoted secret: the quotes stay
                    start += 1
                while end > start and line[end - 1] in _QUOTES:
                    end -= 1
                if end > start:
                    spans.append((start, end, detector.priority, detector.id))
        if not spans:
            return None
        merged = _merge(spans)
        text = _replace(line, merged)
        if line.lstrip().startswith(("{", "[")):
            text = _keep_json(line, text, merged)
        return Redaction(text, tuple(dict.fromkeys(kind for _, _, kind in merged)))


_QUOTES = "\"'`"
# RE2's word characters (``\b``), by byte
_WORD_BYTE = np.array([chr(b).isascii() and (chr(b).isalnum() or b == ord("_")) for b in range(256)])


def _starts(lines: Sequence[str]) -> np.ndarray:
    """Where each line starts in the lines joined by newlines (and where the next would)."""
    out = np.empty(len(lines) + 1, dtype=np.int64)
    out[0] = 0
    np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 1, out=out[1:])
    return out


def _merge(spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans become one, named by the most specific detector among them."""
    spans.sort()
    out: list[list[Any]] = []
    for start, end, priority, kind in spans:
        if out and start < out[-1][1]:
            last = out[-1]
            last[1] = max(last[1], end)
            if priority < last[2]:
                last[2], last[3] = priority, kind
        else:
            out.append([start, end, priority, kind])
    return [(s, e, k) for s, e, _, k in out]


def _replace(line: str, spans: list[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    at = 0
    for start, end, kind in spans:
        parts += (line[at:start], marker(kind))
        at = end
    parts.append(line[at:])
    return "".join(parts)


def _keep_json(line: str, text: str, spans: list[tuple[int, int, str]]) -> str:
    """A JSON line whose redaction broke it (a secret that ran into a quote or an escape) is
    redacted again value by value: same keys, same structure, every secret gone."""
    try:
        orjson.loads(text)
        return text
    except orjson.JSONDecodeError:
        pass
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return text  # it was not JSON to begin with
    found = sorted({(line[s:e].strip(_QUOTES), kind) for s, e, kind in spans}, key=lambda f: -len(f[0]))
    # a secret written with JSON escapes is found decoded in the values
    decoded = [(_unescape(secret), kind) for secret, kind in found]

    def clean(value: str) -> str:
        for secret, kind in decoded:
            if secret and secret in value:
                value = value.replace(secret, marker(kind))
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return clean(node)
        if isinstance(node, dict):
            return {clean(k): walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return orjson.dumps(walk(doc)).decode()


def _unescape(fragment: str) -> str:
    try:
        return str(orjson.loads(f'"{fragment}"'))
    except orjson.JSONDecodeError:
        return fragment.replace("\\\\", "\\").replace('\\"', '"')


def load(paths: Sequence[Path | str] = ()) -> Redactor:
    """The shipped gitleaks rules, our tuning of them for logs (``data/secrets/logwarden.toml``),
    then each user file (``LOGWARDEN_SECRET_RULES``), and our structural detectors."""
    ruleset = gitleaks.load([_data("logwarden.toml"), *paths], _data("gitleaks.toml"))
    own = {d.id for d in DETECTORS}
    rules = [r for r in ruleset.rules if r.id not in own]
    skipped = ruleset.skipped | {rid: REPLACED.get(rid, "replaced by a structural detector")
                                 for rid in own if any(r.id == rid for r in ruleset.rules)}
    return Redactor([*rules, *DETECTORS], skipped, ruleset.sources)


@functools.cache
def redactor_for(paths: tuple[str, ...] = ()) -> Redactor:
    """The redactor of the shipped rules extended by ``paths`` (``LOGWARDEN_SECRET_RULES``), built
    once per process."""
    return load(paths)


def default_redactor() -> Redactor:
    return redactor_for(())


def known_kinds() -> frozenset[str]:
    """Every secret kind the shipped detectors can report."""
    return frozenset(default_redactor().ids)


def kind_named(name: str) -> str:
    """A secret kind by its current name or its name before the gitleaks rules (``aws_session_token``)."""
    return OLD_NAMES.get(name, name)


def redact(line: str) -> Redaction | None:
    """Redact with the shipped detectors (a checker built from settings uses its own Redactor)."""
    return default_redactor().redact(line)


def opens_private_key(line: str) -> bool:
    """A raw private key block starts on this line and does not end on it."""
    return "PRIVATE KEY" in line and "-----BEGIN" in line and "-----END" not in line


def closes_private_key(line: str) -> bool:
    return "-----END" in line and "PRIVATE KEY" in line

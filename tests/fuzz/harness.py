"""The fuzzing campaign's engine: a seed corpus per format, mutators, and the invariants every
line must keep through a parser and the logging standard.

Each generated line goes through ``SourceChecker.check_lines`` (the redactor, the parser, the
standard's checks) on its own, and must:

- never raise out of the checker;
- end as exactly one event or violation (a Kubernetes ``EventList`` as one a record; a blank
  line as none);
- take a bounded time (``LINE_SECONDS``) whatever its length;
- never let the secret planted in it reach an event or a violation.

Lines are read as the inputs read them: bytes decoded as UTF-8 with replacement.
``tests/test_fuzz.py`` runs a short campaign in CI; ``python -m tests.fuzz.campaign`` the long one.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.standard import UNREADABLE, SourceChecker, load_profile
from logwarden.violation import Violation

CORPUS = Path(__file__).resolve().parent / "corpus"
FORMATS = ("combined", "syslog", "json", "logfmt", "k8s_audit", "cloudtrail")
# A GitHub token of the documented shape (not a real one): found by gitleaks' github-pat rule.
SECRET = "ghp_Q7rT4vX9mB3nL6wS1yC5hF0jD2gA7eK8p2Zk"
LINE_SECONDS = 2.0  # the most any one line may take, a 1.2 MB one included, on a loaded 2-core machine
EDGE_TIMES = [
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "2026-02-29T10:00:00Z",
    "2026-12-31T23:59:60Z", "2026-11-25T10:00:00+14:00", "2026-11-25T10:00:00-12:00", "2026-11-25T10:00:00",
    "2026-11-25T25:61:61Z", "", "0", "-1", "99999999999999", "1e308", "NaN", "2026-11-25T10:00:00.1234567890123Z",
    "31/Dec/9999:23:59:59 +0000", "01/Jan/0001:00:00:00 -2359", "Feb 29 10:00:00", "Dec 31 23:59:60",
]
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5e308, "", "-", [], {}, [None], {"a": {}},
                         "\u0000", "\ufffd\ufffd", "\u202e", "x" * 5000]


def corpus() -> dict[str, list[str]]:
    return {fmt: [line for line in (CORPUS / f"{fmt}.txt").read_text(encoding="utf-8").splitlines() if line]
            for fmt in FORMATS}


def _random_text(rng: random.Random, n: int) -> str:
    """Text as an input would hand it over: random bytes read as UTF-8 with replacement, mixed
    with the characters formats care about."""
    if rng.random() < 0.5:
        return bytes(rng.getrandbits(8) for _ in range(n)).decode("utf-8", errors="replace")
    return "".join(rng.choice('"\\{}[]:,= \t\r\x00\x1b<>&%/?#@\'`-_.aZ09\u00e9\u4e2d\U0001f600') for _ in range(n))


def _nested(rng: random.Random, depth: int) -> Any:
    value: Any = rng.choice(ODD_VALUES[:6])
    for _ in range(depth):
        value = {"a": value} if rng.random() < 0.5 else [value]
    return value


def _mutate_json(rng: random.Random, doc: Any) -> Any:
    """A wrong type, a missing key, an odd timestamp or deep nesting somewhere in the document."""
    if not isinstance(doc, dict) or not doc:
        return _nested(rng, rng.choice([1, 10, 200, 2000]))
    path: list[Any] = []
    node: Any = doc
    while isinstance(node, dict | list) and node and rng.random() < 0.6:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1] if path else rng.choice(list(doc))
    roll = rng.random()
    if roll < 0.15 and isinstance(parent, dict):
        parent.pop(key, None)
    elif roll < 0.45:
        parent[key] = rng.choice(ODD_VALUES)
    elif roll < 0.65:
        parent[key] = rng.choice(EDGE_TIMES)
    elif roll < 0.75:
        parent[key] = _nested(rng, rng.choice([5, 100, 600, 5000]))
    else:
        parent[key] = _random_text(rng, rng.randint(1, 60))
    return doc


def _huge(rng: random.Random, line: str) -> str:
    at = rng.randint(0, len(line))  # a segment repeated to 30 KB .. 1.2 MB
    segment = line[at: at + rng.randint(1, 30)] or "a"
    size = rng.choices([30_000, 200_000, 1_200_000], [6, 3, 1])[0]
    return line[:at] + segment * (size // len(segment)) + line[at:]


def _edge_time(rng: random.Random, line: str) -> str:
    for old in ("2026-", "Nov ", "/Nov/2026:", "eventTime", "Timestamp"):
        if old in line:
            return line.replace(old, rng.choice(EDGE_TIMES), 1)
    return line


def _structural(rng: random.Random, line: str) -> str:
    try:
        return orjson.dumps(_mutate_json(rng, orjson.loads(line))).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError):
        return line


def _insert(rng: random.Random, line: str) -> str:
    at = rng.randint(0, len(line))
    return line[:at] + _random_text(rng, rng.randint(1, 40)) + line[at:]


def _delete(rng: random.Random, line: str) -> str:
    at = rng.randint(0, len(line))
    return line[:at] + line[at + rng.randint(1, 8):]  # a delimiter or two gone


MUTATIONS = (  # (weight for JSON lines, weight for text lines, mutation)
    (45, 0, _structural),
    (8, 15, lambda rng, line: line[: rng.randint(0, len(line))]),  # truncated
    (8, 20, _insert),
    (6, 15, _delete),
    (12, 15, _edge_time),
    (0.5, 0.5, _huge),  # rare: a 1.2 MB line takes about 0.4 s to scan
    (5, 8, lambda rng, line: "".join(ch.upper() if rng.random() < 0.3 else ch for ch in line)),
    (2, 3, lambda rng, line: rng.choice(["", " ", "\t", "\x00", "{}", "[]", "null", '"x"', "{" * 3000, "[" * 3000])),
    (4, 10, lambda rng, line: line.replace(" ", rng.choice(["  ", "\t", ""]), rng.randint(1, 3))),
    (6, 10, lambda rng, line: line),  # left whole: the seed itself, secrets planted in it
)


def mutate(rng: random.Random, line: str) -> str:
    """One or two mutations of a seed line: structural ones for JSON (wrong types, missing keys,
    odd timestamps, deep nesting), bytes and delimiters for all, now and then a huge line."""
    for _ in range(rng.randint(1, 2)):
        json_line = line.startswith("{")
        weights = [m[0] if json_line else m[1] for m in MUTATIONS]
        line = rng.choices([m[2] for m in MUTATIONS], weights)[0](rng, line)
    return line.replace("\n", " ").replace("\r", " ")


def plant(rng: random.Random, line: str) -> str:
    """The secret, whole and set apart (as a token would stand in a message or a value), in a
    JSON string value when the line is JSON, else at a space."""
    if line.startswith("{"):
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            strings = [k for k, v in doc.items() if isinstance(v, str)]
            key = rng.choice(strings) if strings else "message"
            doc[key] = f"{doc.get(key, '')} {SECRET} ".lstrip() if isinstance(doc.get(key), str) else SECRET
            return orjson.dumps(doc).decode()
    spaces = [i for i, ch in enumerate(line) if ch == " "] or [len(line)]
    at = rng.choice(spaces)
    return f"{line[:at]} {SECRET} {line[at:]}"


@dataclass
class Findings:
    """What a campaign saw: counts, the slowest line, and every broken invariant (with its line)."""

    lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    slowest_length: int = 0
    longest: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Findings) -> None:
        self.lines += other.lines
        self.outcomes.update(other.outcomes)
        if other.slowest > self.slowest:
            self.slowest, self.slowest_length = other.slowest, other.slowest_length
        self.longest = max(self.longest, other.longest)
        self.failures += other.failures


class Checker:
    """One ``SourceChecker`` a format, as a flow would hold per source."""

    def __init__(self) -> None:
        options = ParserOptions()
        self._checkers = {fmt: SourceChecker(load_profile(), build_parser(fmt, options), f"fuzz.{fmt}")
                          for fmt in FORMATS}
        self._line = Counter[str]()

    def check(self, fmt: str, line: str, planted: bool, found: Findings) -> None:
        checker = self._checkers[fmt]
        self._line[fmt] += 1
        lineno = self._line[fmt]
        checker.in_key_block = False  # each line judged alone (a fuzzed key block would swallow the rest)
        start = time.perf_counter()
        try:
            out = [x for x in checker.check_lines([line], lineno) if isinstance(x, Event | Violation)]
        except Exception as exc:  # any escape is the finding
            found.failures.append(f"{fmt}: raised {type(exc).__name__}: {exc} on {line[:300]!r}")
            return
        seconds = time.perf_counter() - start
        found.lines += 1
        found.longest = max(found.longest, len(line))
        if seconds > found.slowest:
            found.slowest, found.slowest_length = seconds, len(line)
        if seconds > LINE_SECONDS:
            found.failures.append(f"{fmt}: {seconds:.2f} s for a line of {len(line):,} characters: {line[:300]!r}")
        mine = [x for x in out if x.line == lineno]
        # a record ends as an event (with a `redacted` violation beside it when a secret was
        # taken out) or as a violation that dropped it
        records = sum(1 for x in mine if isinstance(x, Event) or x.action == "dropped")
        several = fmt == "k8s_audit" and '"EventList"' in line
        blank = not line.strip() and len(line) <= checker._max_line
        if not (records == (0 if blank else 1) or several):
            found.failures.append(f"{fmt}: {records} records for one line: {line[:300]!r}")
        for x in mine:
            found.outcomes[x.reason if isinstance(x, Violation) else "event"] += 1
            try:
                written = orjson.dumps(x.to_dict()).decode()  # as the sinks write it
            except (TypeError, orjson.JSONEncodeError) as exc:
                found.failures.append(f"{fmt}: {type(x).__name__} cannot be written ({exc}): {line[:300]!r}")
                continue
            if isinstance(x, Violation) and UNREADABLE in x.detail:  # quarantined, yet a parser bug
                found.failures.append(f"{fmt}: {x.detail}: {line[:300]!r}")
            if planted and SECRET in written:
                found.failures.append(f"{fmt}: the planted secret reached {type(x).__name__}: {line[:300]!r}")


def campaign(lines: int, seed: int = 1) -> Findings:
    """``lines`` mutated lines, spread over the formats, about one in three with a secret planted."""
    rng = random.Random(seed)
    seeds = corpus()
    checker, found = Checker(), Findings()
    for k in range(lines):
        fmt = FORMATS[k % len(FORMATS)]
        line = mutate(rng, rng.choice(seeds[fmt]))
        planted = rng.random() < 0.35
        if planted:
            line = plant(rng, line)
        checker.check(fmt, line, planted, found)
    return found

"""The secret pattern set logwarden used before gitleaks' rules (0.1, ten formats), kept only as
bench_secrets.py's baseline. Not used by logwarden.

A compiled pattern set rather than a detector library: detect-secrets and friends scan with
dozens of plugins per line and cost tens of microseconds a line, which alone would break our
150k lines/s budget. One combined regex decides whether a line needs work at all (almost no
line does); only then do the individual patterns run and replace the secret by a marker.

Redaction runs on the raw line *before* parsing, so no later stage (events, violations,
alerts, Slack, Redis, the audit trail, our own logs) can ever see the secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# (kind, literal triggers, pattern, group): a pattern runs only when one of its lowercase
# triggers occurs in the lowercased line (a ``in`` check costs nanoseconds, a pattern
# microseconds); ``group`` is the part replaced by the marker (0 = the whole match).
_PATTERNS: tuple[tuple[str, tuple[str, ...], str, int], ...] = (
    ("private_key", ("private key",),
     r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
     r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*)", 0),
    ("aws_access_key_id", ("akia", "asia"),
     r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", 0),
    ("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b", 0),
    ("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
     r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,99}\b", 0),
    ("slack_token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0),
    ("jwt", ("eyj",), r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", 0),
    ("bearer_token", ("bearer ", "basic "),
     r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9\-._~+/]{8,}=*)", 1),
    ("url_password", ("://",),
     r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^/\s:@\"']{1,256}:([^/\s@\"']{1,256})@", 1),
    # STS credentials as CloudTrail writes them (AssumeRole answers): expected in a trail, a leak
    # anywhere else.
    ("aws_session_token", ("\"sessiontoken\"",), r"(?i)\"sessionToken\"\s*:\s*\"([^\"]{16,})\"", 1),
    ("password_param", ("pass", "pwd", "secret", "token", "api_key", "apikey", "api-key",
                        "private_key"),
     # (?!pwd=/): sudo logs the working directory as PWD=/home/...
     r"(?i)(?<![A-Za-z0-9])(?!pwd\s*=\s*/)(?:password|passwd|pwd|passphrase|secret|client_?secret|token"
     r"|access_?token|refresh_?token|auth_?token|session_?token|id_?token|api_?key|api-key"
     r"|private_?key)"
     r"\"?\s*[=:]\s*\"?([^\s&\"',;}\]]{1,512})", 1),
)

_COMPILED = tuple((kind, re.compile(pattern), group) for kind, _, pattern, group in _PATTERNS)
# Cheap second checks before a pattern's substitution runs: URL credentials need an "@"; a
# password parameter needs its key followed by "=" or ":" ("Failed password for" has neither).
_GATES: dict[str, Callable[[str], bool]] = {
    "url_password": lambda line: "@" in line,
    "password_param": re.compile(r"(?i)(?:pass|pwd|secret|token|key)[a-z]*\"?\s*[=:]").search,  # type: ignore[dict-item]
}
_TRIGGER_TO_PATTERN = {t: i for i, (_, triggers, _, _) in enumerate(_PATTERNS) for t in triggers}


def _trie(words: list[str]) -> str:
    """A regex of literal words factored by prefix (``a(?:kia|sia)``): the engine then branches
    on one character per position instead of trying every word (about 2x faster here)."""
    groups: dict[str, list[str]] = {}
    ends = False
    for w in words:
        if w:
            groups.setdefault(w[0], []).append(w[1:])
        else:
            ends = True
    alts = [re.escape(c) + _trie(rest) for c, rest in sorted(groups.items())]
    body = "" if not alts else alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return f"(?:{body})?" if ends and body else body


# One regex of every literal trigger, run over the lowercased line: a single C-level scan.
_TRIGGERS = re.compile(_trie(sorted(_TRIGGER_TO_PATTERN)))
SECRET_KINDS = tuple(kind for kind, _, _, _ in _PATTERNS)
_MARKER_PREFIX = "[REDACTED:"


def marker(kind: str) -> str:
    return f"{_MARKER_PREFIX}{kind}]"


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str  # the line with every secret replaced by its marker
    kinds: tuple[str, ...]  # kinds found, in pattern order, each once


def redact(line: str) -> Redaction | None:
    """Return the redacted line and what was found, or None when the line is clean."""
    lowered = line.lower()
    if _TRIGGERS.search(lowered) is None:  # almost every line stops here
        return None
    hits = _TRIGGERS.findall(lowered)
    found: list[str] = []
    text = line
    for i in sorted({_TRIGGER_TO_PATTERN[t] for t in hits}):
        kind, pattern, group = _COMPILED[i]
        gate = _GATES.get(kind)
        if gate is not None and not gate(line):
            continue
        text, n = _sub(pattern, group, kind, text)
        if n:
            found.append(kind)
    if not found:
        return None
    return Redaction(text, tuple(found))


def _sub(pattern: re.Pattern[str], group: int, kind: str, text: str) -> tuple[str, int]:
    mark = marker(kind)
    if group == 0:
        return pattern.subn(mark, text)

    def replace(m: re.Match[str]) -> str:
        value = m.group(group)
        if value.startswith(_MARKER_PREFIX):  # already redacted by an earlier pattern
            return m.group(0)
        start, end = m.span(group)
        whole_start = m.start(0)
        whole = m.group(0)
        return whole[: start - whole_start] + mark + whole[end - whole_start :]

    out, n = pattern.subn(replace, text)
    return out, (n if out != text else 0)


def opens_private_key(line: str) -> bool:
    """A raw private key block starts on this line and does not end on it."""
    return "PRIVATE KEY" in line and "-----BEGIN" in line and "-----END" not in line


def closes_private_key(line: str) -> bool:
    return "-----END" in line and "PRIVATE KEY" in line

"""Our own detectors, beside gitleaks' token formats: secrets found by where they stand in a line
(a URL's password, a credential-named parameter or JSON key, an Authorization header, a private
key block) rather than by what they look like.

Each detector is one entry of ``DETECTORS``. Like gitleaks' rules, each has lowercase keywords (it
is tried only on lines holding one) and gives the spans of the secrets it finds. A replacement
never covers a quote or a JSON escape, so a redacted JSON line stays valid JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import re2

from logwarden.secrets.gitleaks import secret_group, shannon_entropy

MARKER_PREFIX = "[REDACTED:"


@dataclass(frozen=True, slots=True)
class Structural:
    id: str
    description: str
    keywords: tuple[str, ...]
    regex: re.Pattern[str]
    gate: Callable[[str], bool] | None = None  # a cheap check of the line before the regex
    # A text every line with such a secret holds besides a keyword (a URL password's "@" beside
    # "://"), in lower case: the keyword pass asks it of a whole batch at once.
    requires: str | None = None
    accept: Callable[[str], bool] | None = None  # a check of each secret found
    priority: int = 1  # 0 wins over gitleaks' generic and our other detectors on the same text

    def find(self, line: str, at: Iterable[int] = ()) -> Iterator[tuple[int, int]]:
        if (self.gate is not None and not self.gate(line)) or (self.requires is not None
                                                               and self.requires not in line.lower()):
            return
        for m in self.regex.finditer(line):
            group = secret_group(m, self.regex.groups)
            secret = m.group(group)
            if not secret or secret.startswith(MARKER_PREFIX):  # already redacted upstream
                continue
            if self.accept is not None and not self.accept(secret):
                continue
            yield m.span(group)


def _token_like(secret: str) -> bool:
    """Not a plain word ("Basic authentication failed"): a credential has a digit, a capital or a
    symbol, and some variety."""
    return not secret.isalpha() or (not secret.islower() and shannon_entropy(secret) > 2.5)


def _real_value(secret: str) -> bool:
    """Not an empty or placeholder value: ``password=***``, ``token=null``, ``${TOKEN}``."""
    low = secret.strip("'\"").lower()
    return bool(low) and low not in ("null", "none", "nil", "true", "false", "undefined", "-") \
        and not set(low) <= set("*x.") and not low.startswith(("${", "{{", "%"))


_KEYS = (r"(?:password|passwd|pwd|passphrase|secret|client_?secret|token|access_?token|refresh_?token"
         r"|auth_?token|session_?token|id_?token|api_?key|api-key|private_?key)")

DETECTORS: tuple[Structural, ...] = (
    Structural(
        "private-key", "a private key block (PEM), whole or its first line",
        ("private key",),
        # to the END line, else to the end of the JSON string or of the line (the block goes on)
        re.compile(r"(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
                   r"(?:(?:[^\"\\-]|\\.|-(?!----END))*-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
                   r"|(?:[^\"\\]|\\.)*)"),
        priority=0),
    Structural(
        "aws-session-token", "an STS session token as CloudTrail writes it",
        ("\"sessiontoken\"",), re.compile(r"(?i)\"sessionToken\"\s*:\s*\"([^\"\\]{16,})\""), priority=0),
    Structural(
        "url-password", "the password of a URL's user:password@",
        ("://",), re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^/\s:@\"'\\]{1,256}:([^/\s@\"'\\]{1,256})@"),
        requires="@", accept=_real_value),
    Structural(
        "bearer-token", "an HTTP Bearer credential",
        ("bearer",), re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)"), accept=_token_like),
    Structural(
        "basic-auth", "an HTTP Basic credential",
        ("basic",), re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])"), accept=_token_like),
    Structural(
        "credential-param", "the value of a credential-named parameter, JSON key or assignment",
        ("pass", "pwd", "secret", "token", "api_key", "apikey", "api-key", "private_key"),
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?!pwd\s*=\s*/)" + _KEYS + r"(?:"
            r"\"\s*:\s*\"((?:[^\"\\]|\\[^\"]){1,512})\""  # "key": "value" (JSON)
            r"|\\\"\s*:\s*\\\"((?:[^\"\\]|\\[^\"]){1,512})\\\""  # \"key\": \"value\" (JSON in a string)
            r"|'?\s*[=:]\s*'([^'\n]{1,512})'"  # key='value', 'key': 'value'
            r"|\s*=\s*\"([^\"\\]{1,512})\""  # key="value"
            r"|\s*[=:]\s*(?![\"'{\[])([^\s&\"',;}\]\\]{1,512}))"),  # key=value, key: value (not a JSON object)
        # sudo logs the working directory as PWD=/home/...; "Failed password for" has no = or :
        # (RE2: linear in the line; Python's re took 3.6 s on 30 KB of "passwpassw...")
        gate=re2.compile(r"(?i)(?:pass|pwd|secret|token|key)[a-z_-]*\\?[\"']?\s*[=:]").search,
        accept=_real_value),
)

"""The built-in rule that exercises the path end to end until a rule pack is loaded."""

from __future__ import annotations

from datetime import timedelta

from logwarden.event import Event
from logwarden.rules.base import RuleMeta
from logwarden.rules.threshold import ThresholdRule

LOGIN_ACTIONS = frozenset({"ssh_login", "ConsoleLogin", "login", "signin", "authenticate"})


# sshd logs one attempt several times (Failed password + pam_unix + Invalid user): count one.
_ECHOES = frozenset({"pam_auth", "ssh_invalid_user", "pam_user_unknown"})


def _failed_login(e: Event) -> bool:
    if e.outcome != "failure":
        return False
    if e.status_code in (401, 403) and e.url_path and "login" in e.url_path.lower():
        return True  # a web form or API login refused
    return e.action in LOGIN_ACTIONS or (e.category == "authentication" and e.action not in _ECHOES)


AUTH_BRUTEFORCE = ThresholdRule(
    meta=RuleMeta(
        id="auth.bruteforce.source_ip",
        description="Failed logins from one source address",
        severity="high",
        group_by="source.ip",
        tags=("pci-dss-4.0:10.2.1.4", "nist-800-53:AC-7", "attack:T1110"),
    ),
    where=_failed_login,
    count=10,
    window=timedelta(minutes=5),
)

BUILTIN_RULES = [AUTH_BRUTEFORCE]

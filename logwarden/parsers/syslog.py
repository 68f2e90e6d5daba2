"""Syslog authentication lines: sshd, sudo, su, pam_unix (RFC 3164, RFC 5424, ISO 8601).

RFC 3164 carries no year and no zone: the year comes from ``ParserOptions.syslog_year`` or is
the one that puts the event closest before now; the zone is left naive for the standard
profile to decide (the default profile reads such lines as UTC).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

from logwarden.errors import ParseError, TimestampError
from logwarden.event import Event
from logwarden.parsers.base import ParserOptions
from logwarden.timeutil import IN_HOUR, MONTHS, parse_iso, utcnow

_RFC3164 = re.compile(
    r"^(?:<\d{1,3}>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) "
    r"(?P<host>\S+) (?P<prog>[^\s\[:]+(?:\([^)]*\))?)(?:\[(?P<pid>\d+)\])?:? ?(?P<msg>.*)$"
)
_RFC3164_LOOSE = re.compile(  # odd program fields ("-- root[2421]:"): keep the whole message
    r"^(?:<\d{1,3}>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) "
    r"(?P<host>\S+) +(?P<msg>.*)$"
)
_RFC5424 = re.compile(
    r"^<\d{1,3}>\d (?P<ts>\S+) (?P<host>\S+) (?P<prog>\S+) (?P<pid>\S+) \S+ "
    r"(?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?P<msg>.*)$"
)
_ISO = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?P<host>\S+) "
    r"(?P<prog>[^\s\[:]+(?:\([^)]*\))?)(?:\[(?P<pid>\d+)\])?:? ?(?P<msg>.*)$"
)

_IP = r"(?P<ip>[0-9A-Fa-f:.]+)"
_SSH_AUTH = re.compile(
    r"^(?P<result>Failed|Accepted) (?P<method>\S+) for (?:invalid user )?(?P<user>.*?) from "
    + _IP + r"(?: port (?P<port>\d+))?"
)
_SSH_INVALID = re.compile(r"^[Ii]nvalid user (?P<user>.*?) from " + _IP)
_SSH_INVALID_PREAUTH = re.compile(r"^input_userauth_request: invalid user (?P<user>.*?) \[preauth\]")
_SSH_DISCONNECT = re.compile(
    r"^(?:error: )?(?:Received disconnect|Disconnected|Connection closed|Connection reset)"
    r"(?: by| from)?(?: (?:invalid |authenticating )?user (?P<user>\S+))? " + _IP
)
_SSH_NOIDENT = re.compile(r"^Did not receive identification string from " + _IP)
_SSH_REVERSE = re.compile(r"^reverse mapping checking getaddrinfo for \S+ \[" + _IP + r"\] failed")
_SSH_TOO_MANY = re.compile(r"^(?:error: )?(?:Disconnecting|maximum authentication attempts exceeded)"
                           r".*? for (?:invalid user )?(?P<user>\S+)(?: from " + _IP + ")?")
_REPEATED = re.compile(r"^message repeated (?P<n>\d+) times: \[ ?(?P<msg>.*?) ?\]$")
_PAM = re.compile(r"^(?:pam_unix\((?P<svc>[^:)]+):(?P<kind>[^)]+)\): )?(?P<rest>.*)$")
# Keys start only at a word's start and nothing is given back (same pairs as (\w+)=(\S*): a
# word not followed by "=" cannot match from inside itself either), 1.6x faster.
_KV = re.compile(r"(?<!\w)(\w++)=(\S*+)")
_PAM_MORE = re.compile(r"^PAM (?P<n>\d+) more authentication failures?;")
_SESSION = re.compile(r"^session (?P<what>opened|closed) for user (?P<user>[^\s(]+)")
_SUDO = re.compile(r"^\s*(?P<user>\S+) : (?P<rest>.*)$")
_SU = re.compile(r"^(?P<failed>FAILED SU|FAILED su|Successful su|)\s*\(to (?P<target>[^)]+)\) (?P<user>\S+)")


_DAY = timedelta(days=1)
_HOURS_MAX = 4096  # (month, day, hour) keys remembered; a stream of junk dates could grow it without end


class SyslogAuth:
    name: ClassVar[str] = "syslog"

    def __init__(self, options: ParserOptions) -> None:
        self._year = options.syslog_year
        self._now = options.now
        # The lines of a log share their hours: (month, day, hour) -> that hour in the year
        # ``_rfc3164_time`` chose for it, so a line costs a lookup and its minutes and seconds.
        # The choice moves with today's date: the hours are forgotten when it changes.
        self._hours: dict[tuple[str, str, str], datetime] = {}
        self._today: tuple[int, int, int] | None = None

    def sniff(self, line: str) -> bool:
        return any(p.match(line) for p in (_RFC3164, _RFC5424, _ISO))

    def parse(self, line: str, source: str, lineno: int) -> Event:
        m = _RFC3164.match(line) or _RFC3164_LOOSE.match(line)
        if m is not None:
            ts = self._rfc3164_time(m["mon"], m["day"], m["time"])
        else:
            m = _RFC5424.match(line) or _ISO.match(line)
            if m is None:
                raise ParseError("not a syslog line (RFC 3164, RFC 5424 or ISO 8601)")
            ts = parse_iso(m["ts"])
        prog = (m["prog"] if "prog" in m.re.groupindex else None) or "syslog"  # the loose form has none
        host = m["host"]
        event = Event(  # positionally: see EVENT_ORDER
            ts, source, lineno, self.name,  # timestamp, source, line, dataset
            prog, None, "host",  # action, outcome, category
            None, None, None, None, None, None, None, None,  # user_name ... bytes: set below
            host, host,  # resource, host_name
        )
        _interpret(event, prog, m["msg"])
        _set_extra(event, "message", m["msg"])  # what Sigma keywords search (already redacted)
        return event

    def _rfc3164_time(self, mon: str, day: str, hms: str) -> datetime:
        now = None
        if self._year is None:
            now = self._now or utcnow()
            if (today := (now.year, now.month, now.day)) != self._today:
                self._hours.clear()
                self._today = today
        key = (mon, day, hms[:2])
        hour = self._hours.get(key)
        if hour is not None and (in_hour := IN_HOUR.get(hms[3:])) is not None:
            return hour + in_hour
        ts, fixed = self._whole_time(mon, day, hms, now)
        if fixed:
            if len(self._hours) >= _HOURS_MAX:
                self._hours.clear()
            self._hours[key] = ts.replace(minute=0, second=0)
        return ts

    def _whole_time(self, mon: str, day: str, hms: str, now: datetime | None) -> tuple[datetime, bool]:
        """The line's time, and whether its year is the same at every time of its day (only
        the date tomorrow has today's year or the last one depending on the time)."""
        try:
            month = MONTHS[mon]
            hour, minute, second = int(hms[0:2]), int(hms[3:5]), int(hms[6:8])
            if now is None:
                return datetime(self._year, month, int(day), hour, minute, second), True  # type: ignore[arg-type]  # noqa: DTZ001
            now = datetime.combine(now.date(), now.time())  # naive, as replace(tzinfo=None) but 6x cheaper
            tomorrow = now + _DAY
            for year in (now.year, now.year - 1, now.year - 4):  # -4: Feb 29 of a leap year
                try:
                    ts = datetime(year, month, int(day), hour, minute, second)  # noqa: DTZ001
                except ValueError:
                    continue
                if ts <= tomorrow:
                    return ts, (month, int(day)) != (tomorrow.month, tomorrow.day)
        except (KeyError, ValueError):
            pass
        raise TimestampError(f"unparseable syslog timestamp {mon} {day} {hms}")


def _interpret(e: Event, prog: str, msg: str) -> None:
    """Fill action/outcome/user/address from an auth message; leave others generic."""
    base = prog.split("(", 1)[0]
    repeated = _REPEATED.match(msg)
    if repeated:
        msg = repeated["msg"]
        _set_extra(e, "event.repeat_count", int(repeated["n"]))
    if base == "sshd":
        e.category = "authentication"
        _sshd(e, msg)
    elif base == "sudo":
        e.category = "process"
        _sudo(e, msg)
    elif base == "su":
        e.category = "authentication"
        _su(e, msg)
    if "pam_unix" in prog or msg.startswith("pam_unix(") or msg.startswith("PAM "):
        _pam(e, prog, msg)


def _sshd(e: Event, msg: str) -> None:
    if m := _SSH_AUTH.match(msg):
        e.action = "ssh_login"
        e.outcome = "success" if m["result"] == "Accepted" else "failure"
        e.user_name, e.source_ip = m["user"], m["ip"]
        _set_extra(e, "ssh.method", m["method"])
        if "invalid user" in msg[: len(m.group(0))]:
            _set_extra(e, "user.invalid", True)
    elif m := _SSH_INVALID.match(msg):
        e.action, e.outcome = "ssh_invalid_user", "failure"
        e.user_name, e.source_ip = m["user"], m["ip"]
    elif m := _SSH_INVALID_PREAUTH.match(msg):
        e.action, e.outcome, e.user_name = "ssh_invalid_user", "failure", m["user"]
    elif m := _SSH_NOIDENT.match(msg):
        e.action, e.outcome, e.source_ip = "ssh_no_identification", "failure", m["ip"]
    elif m := _SSH_REVERSE.match(msg):
        e.action, e.outcome, e.source_ip = "ssh_reverse_mapping_failed", "unknown", m["ip"]
    elif m := _SSH_DISCONNECT.match(msg):
        e.action, e.outcome, e.source_ip = "ssh_disconnect", "unknown", m["ip"]
        e.user_name = m["user"]
    elif m := _SSH_TOO_MANY.match(msg):
        e.action, e.outcome, e.user_name = "ssh_too_many_failures", "failure", m["user"]
        e.source_ip = m["ip"]
    elif m := _SESSION.match(msg):
        e.action = f"session_{m['what'].replace('opened', 'open').replace('closed', 'close')}"
        e.outcome, e.user_name = "success", m["user"]


def _pam(e: Event, prog: str, msg: str) -> None:
    m = _PAM.match(msg)
    rest = m["rest"] if m else msg
    if (sm := _SESSION.match(rest)) is not None:
        e.action = "session_open" if sm["what"] == "opened" else "session_close"
        e.outcome, e.user_name = "success", sm["user"]
        e.category = "session"
        return
    if "authentication failure" in rest or _PAM_MORE.match(rest):
        fields = dict(_KV.findall(rest))
        e.action, e.outcome = "pam_auth", "failure"
        e.category = "authentication"
        e.user_name = fields.get("user") or e.user_name
        e.source_ip = fields.get("rhost") or e.source_ip
        if _PAM_MORE.match(rest):
            _set_extra(e, "event.repeat_count", int(rest.split()[1]))
    elif rest.startswith("check pass; user unknown"):
        e.action, e.outcome = "pam_user_unknown", "failure"


def _sudo(e: Event, msg: str) -> None:
    m = _SUDO.match(msg)
    if m is None:
        return
    e.user_name = m["user"]
    fields = {k.strip(): v.strip() for k, _, v in
              (part.partition("=") for part in m["rest"].split(" ; ")) if _}
    first = m["rest"].split(" ; ", 1)[0]
    e.action = "sudo_command"
    failed = "incorrect password" in first or "NOT in sudoers" in first or "NOT allowed" in first
    e.outcome = "failure" if failed else "success"
    if "COMMAND" in fields:
        e.resource = fields["COMMAND"]
        _set_extra(e, "process.command_line", fields["COMMAND"])
    if "USER" in fields:
        _set_extra(e, "user.target.name", fields["USER"])
    if "TTY" in fields:
        _set_extra(e, "process.tty", fields["TTY"])


def _su(e: Event, msg: str) -> None:
    m = _SU.match(msg)
    if m is None:
        return
    e.action = "su"
    e.outcome = "failure" if m["failed"].upper().startswith("FAILED") else "success"
    e.user_name = m["user"]
    _set_extra(e, "user.target.name", m["target"])


def _set_extra(e: Event, key: str, value: Any) -> None:
    if e.extra is None:
        e.extra = {}
    e.extra[key] = value

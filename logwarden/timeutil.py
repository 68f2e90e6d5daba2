"""Timestamp parsing and formatting. Everything leaving here is tz-aware UTC or naive
(naive only when the line carried no zone; the standard check decides what that means)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate, islice
from operator import le

from logwarden.errors import TimestampError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS_THRESHOLD = 100_000_000_000  # numbers above this are epoch milliseconds
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_iso(value: str) -> datetime:
    """ISO 8601 / RFC 3339 as written by real systems (``Z``, offsets, fractions)."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise TimestampError(f"unparseable timestamp {value[:40]!r}") from None
    return dt.astimezone(UTC) if dt.tzinfo is not None else dt


def parse_epoch(value: float) -> datetime:
    seconds = value / 1000 if value > _EPOCH_MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise TimestampError(f"epoch value out of range: {value!r}") from None


def parse_any(value: object) -> datetime:
    """A timestamp from a structured field: ISO string, or epoch seconds/milliseconds."""
    if isinstance(value, str):  # first: nearly every value is one (and never a bool or number)
        stripped = value.strip()
        if "-" not in stripped and stripped.replace(".", "", 1).isdigit():  # "-": ISO, skip the copy
            return parse_epoch(float(stripped))
        return parse_iso(stripped)
    if isinstance(value, bool):
        raise TimestampError(f"unparseable timestamp {value!r}")
    if isinstance(value, (int, float)):
        return parse_epoch(float(value))
    raise TimestampError(f"unparseable timestamp of type {type(value).__name__}")


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """``90s``, ``5m``, ``2h``, ``30d``, ``1w`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 5m, 2h, 30d)")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """The short form ``parse_duration`` reads back: ``1h``, ``24h``, ``90s``, ``7d`` (days from two on)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0 and (unit != "d" or seconds >= 2 * size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def running_newest(times: list[datetime], newest: datetime | None) -> list[datetime]:
    """The newest time so far at each of ``times`` (``newest``: the newest before them), a list
    that only rises: ``times`` itself when they only rise (asked in C), the usual case."""
    if not times or ((newest is None or times[0] >= newest) and all(map(le, times, islice(times, 1, None)))):
        return times
    if newest is None:
        return list(accumulate(times, max))
    return list(accumulate(times, max, initial=newest))[1:]


def isoformat(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_OFFSETS: dict[str, timezone] = {}


def _offset(text: str) -> timezone:
    tz = _OFFSETS.get(text)
    if tz is None:
        if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
            raise ValueError(text)
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        tz = UTC if minutes == 0 else timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
        _OFFSETS[text] = tz
    return tz


# The lines of a log share their hour (date, hour and zone): each distinct one is parsed once,
# then a line costs a dict lookup and the addition of its minutes and seconds. Bounded, as a
# stream of junk timestamps could otherwise grow it without end.
_CLF_HOURS: dict[str, datetime] = {}
_CLF_HOURS_MAX = 1024
# "mm:ss" -> its offset in the hour (other texts, such as " 5:07", are left to the whole parse)
IN_HOUR = {f"{m:02d}:{s:02d}": timedelta(minutes=m, seconds=s) for m in range(60) for s in range(60)}


def parse_clf(value: str) -> datetime:
    """``17/May/2015:10:05:03 +0000`` (common log format): a cached hour plus its minutes and seconds."""
    # The key is every character the hour is read from; the zone is a whole number of minutes,
    # so converting to UTC leaves the minutes and seconds as they are.
    hour = _CLF_HOURS.get(value[:14] + value[20:26])
    if hour is not None:
        offset = IN_HOUR.get(value[15:20])
        if offset is not None:
            return hour + offset
    dt = _parse_clf(value)
    if len(_CLF_HOURS) >= _CLF_HOURS_MAX:
        _CLF_HOURS.clear()
    _CLF_HOURS[value[:14] + value[20:26]] = dt - timedelta(minutes=int(value[15:17]), seconds=int(value[18:20]))
    return dt


def parse_clf_many(values: Iterable[str]) -> dict[str, datetime | None]:
    """``parse_clf`` of each text, None where it raises (a batch's distinct times)."""
    out: dict[str, datetime | None] = {}
    for value in values:
        try:
            out[value] = parse_clf(value)
        except TimestampError:
            out[value] = None
    return out


def _parse_clf(value: str) -> datetime:
    """The whole timestamp, 6x faster than strptime; what says which strings are valid."""
    try:
        dt = datetime(
            int(value[7:11]), MONTHS[value[3:6]], int(value[0:2]),
            int(value[12:14]), int(value[15:17]), int(value[18:20]),
            tzinfo=_offset(value[21:26]) if len(value) > 20 else None,
        )
    except (KeyError, ValueError, IndexError):
        raise TimestampError(f"unparseable timestamp {value[:40]!r}") from None
    return dt.astimezone(UTC) if dt.tzinfo is not None else dt

"""Map a flat or nested document with ECS names or common aliases onto an ``Event``.

Shared by the JSON-lines and logfmt parsers. A mapping file may add aliases (tried first).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from logwarden.errors import ConfigError, TimestampError
from logwarden.event import EXTRA_FIELDS, Event
from logwarden.parsers.base import as_int, as_str, outcome_from_status
from logwarden.rows import EVENT_ORDER, ParsedColumns
from logwarden.timeutil import parse_any

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "@timestamp": ("@timestamp", "timestamp", "time", "ts", "eventTime", "date", "datetime"),
    "user.name": ("user.name", "user", "username", "user_name", "actor", "principal", "login"),
    "source.ip": ("source.ip", "src_ip", "client_ip", "remote_addr", "ip", "sourceIPAddress",
                  "client.ip", "clientip"),
    "event.action": ("event.action", "action", "event", "verb", "method", "eventName", "msg"),
    "event.outcome": ("event.outcome", "outcome", "status", "result"),
    "resource": ("resource", "url.path", "path", "url", "uri", "object", "target", "table",
                 "db.table"),
    "bytes": ("http.response.body.bytes", "bytes", "rows", "size", "bytes_sent", "rows_read"),
    "user_agent.original": ("user_agent.original", "user_agent", "userAgent", "ua", "http_user_agent"),
    "http.request.method": ("http.request.method", "method", "http_method", "request_method"),
    "http.response.status_code": ("http.response.status_code", "status_code", "status"),
    "url.query": ("url.query", "query", "query_string"),
    "host.name": ("host.name", "host", "hostname"),
    "event.id": ("event.id", "id", "event_id", "request_id"),
    "event.category": ("event.category", "category"),
}

_SUCCESS = frozenset({"success", "succeeded", "ok", "true", "allow", "allowed", "accepted", "pass"})
_FAILURE = frozenset({"failure", "failed", "fail", "false", "deny", "denied", "error", "rejected",
                      "unauthorized", "forbidden"})
_MAX_PLANS = 256
_MAX_KEY_SETS = 4096  # key sets whose relevant keys are remembered (bounded as the plans are)
_CONTAINERS = (dict, list)


def load_alias_file(path: Path) -> dict[str, tuple[str, ...]]:
    """A YAML mapping ``ECS name: [alias, ...]``; its aliases are tried before the defaults."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"mapping file {path}: {exc}") from None
    doc = (doc or {}).get("aliases", doc or {})
    if not isinstance(doc, dict):
        raise ConfigError(f"mapping file {path}: expected 'ECS name: [aliases]'")
    unknown = sorted(set(doc) - set(DEFAULT_ALIASES))
    if unknown:
        raise ConfigError(f"mapping file {path}: unknown field(s) {unknown}; "
                          f"known: {sorted(DEFAULT_ALIASES)}")
    out: dict[str, tuple[str, ...]] = {}
    for name, aliases in doc.items():
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"mapping file {path}: {name}: expected a list of field names")
        out[name] = tuple(aliases)
    return out


def merge_aliases(extra: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(extra.get(name, ())) + aliases for name, aliases in DEFAULT_ALIASES.items()}


class AliasIndex:
    """Reverse index ``alias -> [(field, rank)]`` so a document is mapped in one pass over
    its own keys instead of one probe per alias per field."""

    def __init__(self, aliases: Mapping[str, tuple[str, ...]]) -> None:
        self.fields = tuple(aliases)
        self._index: dict[str, list[tuple[str, int]]] = {}
        for name, names in aliases.items():
            for rank, alias in enumerate(names):
                self._index.setdefault(alias, []).append((name, rank))
        # The lines of one source nearly always share a key set: map it once, then each line
        # costs one dict lookup per field. Bounded, as a source with free-form keys could
        # otherwise grow it without end. With each plan, the parser-known ECS fields the key
        # set holds, kept as extra.
        self._plans: dict[tuple[str, ...], tuple[list[tuple[str, list[str]]], list[str], list[str]]] = {}
        # every leading part of a dotted name it knows ("http", "http.request" of "http.request.method")
        self._prefixes = frozenset(name.rsplit(".", k)[0] for name in (*self._index, *EXTRA_FIELDS)
                                   for k in range(1, name.count(".") + 1))
        # The keys a plan reads (aliases, extras, keys leading to them), per key set: a source whose
        # lines carry optional fields of their own (a trace id, an error) has a key set per line
        # or nearly, but few sets of the keys that matter here.
        self._known = frozenset(self._index) | EXTRA_FIELDS | self._prefixes
        self._relevant: dict[tuple[str, ...], tuple[str, ...]] = {}

    def resolve(self, doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """ECS field -> the value of its best-ranked alias present in ``doc``; and the ECS
        fields beyond the common ones (``k8s.request.role_ref``, ...) it carries, or None.
        Nested ECS objects (``{"source": {"ip": ...}}``) are read by their dotted names."""
        plan, extra_keys, nests = self.plan(self.relevant(tuple(doc)))
        if nests and any(type(doc[k]) is dict for k in nests):
            doc = flatten(doc)
            plan, extra_keys, _ = self.plan(self.relevant(tuple(doc)))
        extras = None
        if extra_keys:  # rare: most sources carry none
            extras = {k: doc[k] for k in extra_keys if doc[k] is not None} or None
        out: dict[str, Any] = {}
        for name, candidates in plan:
            value = _pick(doc, candidates)
            if value is not None:
                out[name] = value
        return out, extras

    def relevant(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        """The keys of a key set that a plan reads, in their order: its plan's key (``plan``)."""
        found = self._relevant.get(keys)
        if found is None:
            if len(self._relevant) >= _MAX_KEY_SETS:
                self._relevant.clear()
            known = self._known
            found = self._relevant[keys] = tuple(k for k in keys if k in known)
        return found

    def plan(self, keys: tuple[str, ...]) -> tuple[list[tuple[str, list[str]]], list[str], list[str]]:
        """A key set's plan: per ECS field its aliases present, best first; its extra keys; and
        the keys that, holding an object, lead to a name it knows (``user`` to ``user.name``):
        a document with an object under one of them is read flattened (``flatten``)."""
        cached = self._plans.get(keys)
        if cached is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            cached = self._plans[keys] = (self._plan(keys), [k for k in keys if k in EXTRA_FIELDS],
                                          [k for k in keys if k in self._prefixes])
        return cached

    def _plan(self, keys: tuple[str, ...]) -> list[tuple[str, list[str]]]:
        ranked: dict[str, list[tuple[int, str]]] = {}
        for key in keys:
            for name, rank in self._index.get(key, ()):
                ranked.setdefault(name, []).append((rank, key))
        return [(name, [key for _, key in sorted(pairs)]) for name, pairs in ranked.items()]


FLAT_DEPTH = 3  # objects nested deeper than this are left whole (a value no alias reads)


def flatten(doc: Mapping[str, Any], prefix: str = "", depth: int = 0,
            out: dict[str, Any] | None = None) -> dict[str, Any]:
    """A document with its nested objects' values under dotted names (``{"source": {"ip": x}}``
    becomes ``{"source.ip": x}``); where two give one name, the first in the document wins."""
    out = {} if out is None else out
    for key, value in doc.items():
        name = prefix + key if prefix else key
        if not isinstance(value, dict) or depth >= FLAT_DEPTH:
            if name not in out:
                out[name] = value
            continue
        stem = name + "."
        for inner, leaf in value.items():  # the usual object, of values: read here, not by a call
            if isinstance(leaf, dict):
                flatten({inner: leaf}, stem, depth + 1, out)
            elif (dotted := stem + inner) not in out:
                out[dotted] = leaf
    return out


def normalize_outcome(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "success" if value else "failure"
    code = as_int(value) if not isinstance(value, str) or value.isdigit() else None
    if code is not None and 100 <= code < 600:
        return outcome_from_status(code)
    text = str(value).strip().lower()
    if text in _SUCCESS:
        return "success"
    if text in _FAILURE:
        return "failure"
    return "unknown" if text == "unknown" else None


# A source writes a handful of distinct outcomes: each is normalized once. Typed, as True and 1
# (or 1.0) are equal keys yet normalize differently.
_outcome = lru_cache(maxsize=256, typed=True)(normalize_outcome)


def event_from_mapping(doc: Mapping[str, Any], index: AliasIndex,
                       source: str, lineno: int, dataset: str) -> Event:
    f, extra = index.resolve(doc)
    get = f.get
    raw_ts = get("@timestamp")
    ts = parse_any(raw_ts) if raw_ts is not None else None  # TimestampError: bad_timestamp
    status = as_int(get("http.response.status_code"))
    if status is not None and not 100 <= status < 600:
        status = None
    method = as_str(get("http.request.method"))
    resource = as_str(get("resource"))
    path = query = None
    if resource and resource.startswith("/"):
        path, _, q = resource.partition("?")
        query = q or None
    return Event(  # positionally: see EVENT_ORDER
        ts, source, lineno, dataset,  # timestamp, source, line, dataset
        as_str(get("event.action")),  # action
        _outcome(get("event.outcome")),  # outcome
        as_str(get("event.category")),  # category
        as_str(get("user.name")),  # user_name
        as_str(get("source.ip")),  # source_ip
        as_str(get("user_agent.original")),  # user_agent
        method.upper() if method and method.isalpha() and len(method) <= 7 else None,  # http_method
        path,  # url_path
        as_str(get("url.query")) or query,  # url_query
        status,  # status_code
        as_int(get("bytes")),  # bytes
        resource,  # resource
        as_str(get("host.name")),  # host_name
        as_str(get("event.id")),  # event_id
        extra,  # extra
    )


_REFUSED = object()  # a time ``parse_any`` refuses


def _pick(doc: Mapping[str, Any], candidates: list[str]) -> Any:
    """One field's value: its best alias's usable value (an array or object: the next alias),
    or None."""
    for key in candidates:
        value = doc[key]
        if value is None or value == "":
            continue
        # str first: the usual value, and cheaper to test than the containers
        if isinstance(value, str) or not isinstance(value, _CONTAINERS):
            return value
    return None


def _key_sets(docs: list[dict[str, Any] | None], index: AliasIndex) -> dict[tuple[str, ...], list[int]]:
    """The rows of each set of the keys a plan reads (``AliasIndex.relevant``: lines that differ
    only in optional fields of their own share one), the documents with a nested object where
    it leads to a known name (``AliasIndex.plan``) flattened first, as ``resolve`` reads them."""
    def grouped() -> dict[tuple[str, ...], list[int]]:
        by_keys: dict[tuple[str, ...], list[int]] = {}
        for row, doc in enumerate(docs):
            if doc is not None:
                by_keys.setdefault(tuple(doc), []).append(row)
        groups: dict[tuple[str, ...], list[int]] = {}  # by the keys a plan reads (``AliasIndex.relevant``)
        for keys, rows in by_keys.items():
            groups.setdefault(index.relevant(keys), []).extend(rows)
        return groups

    groups = grouped()
    nested = set()
    for keys, rows in groups.items():
        for key in index.plan(keys)[2]:  # asked by column: set(map(type, ...)) runs in C
            if dict in set(map(type, [docs[r][key] for r in rows])):  # type: ignore[index]
                nested.update(r for r in rows if type(docs[r][key]) is dict)  # type: ignore[index]
    for row in nested:
        docs[row] = flatten(docs[row])  # type: ignore[arg-type]
    return grouped() if nested else groups


def columns_from_mappings(docs: list[dict[str, Any] | None], index: AliasIndex, source: str,
                          first_lineno: int, dataset: str) -> ParsedColumns:
    """``event_from_mapping`` of a batch's documents as columns (``logwarden.rows``): each key
    set's plan asked once, each field read down its column, each distinct time, method and
    resource read once. A row left to ``parse`` (no document: not a JSON object; a time
    ``parse_any`` refuses) is not ``ok``; every other row is the event ``event_from_mapping``
    gives (``tests/test_parsers.py``), nested ECS objects read by their dotted names as it reads
    them. ``docs``' nested documents are replaced by their flattened form."""
    n = len(docs)
    ok = [doc is not None for doc in docs]
    groups = _key_sets(docs, index)
    whole = len(groups) == 1 and len(next(iter(groups.values()))) == n  # one key set (the usual batch)
    raw: dict[str, list[Any]] = {name: [None] * n for name in index.fields}
    extra: list[dict[str, Any] | None] = [None] * n
    for keys, rows in groups.items():
        plan, extra_keys, _ = index.plan(keys)
        group = docs if whole else [docs[r] for r in rows]
        for name, candidates in plan:
            key = candidates[0]
            values = [d[key] for d in group]  # type: ignore[index]
            types = set(map(type, values))
            if len(candidates) == 1 and not types & _CONTAINER_TYPES:  # one alias, no object or array
                if str in types:
                    values = [None if v == "" else v for v in values]
            else:
                values = [_pick(d, candidates) for d in group]  # type: ignore[arg-type]
            if whole:
                raw[name] = values
            else:
                column = raw[name]
                for r, v in zip(rows, values, strict=True):
                    column[r] = v
        if extra_keys:
            for r, d in zip(rows, group, strict=True):
                extra[r] = {k: d[k] for k in extra_keys if d[k] is not None} or None  # type: ignore[index]
    stamps = {t: _time(t) for t in dict.fromkeys(raw["@timestamp"]) if type(t) is str}
    timestamps = [stamps[t] if type(t) is str else None if t is None else _time(t) for t in raw["@timestamp"]]
    for row in [r for r, t in enumerate(timestamps) if t is _REFUSED]:
        ok[row] = False
    status = [as_int(v) for v in raw["http.response.status_code"]]
    status = [None if s is not None and not 100 <= s < 600 else s for s in status]
    # each distinct text normalized once (only texts: True and 1 are one dict key)
    methods = {m: _method(m) for m in dict.fromkeys(raw["http.request.method"]) if type(m) is str}
    resources = _texts(raw["resource"])
    targets = {r: _target(r) for r in dict.fromkeys(resources)}
    paths, queries = zip(*map(targets.__getitem__, resources), strict=True) if n else ((), ())
    values = (timestamps, [source] * n, list(range(first_lineno, first_lineno + n)), [dataset] * n,
              _texts(raw["event.action"]), [_outcome(v) for v in raw["event.outcome"]],
              _texts(raw["event.category"]), _texts(raw["user.name"]), _texts(raw["source.ip"]),
              _texts(raw["user_agent.original"]),
              [methods[m] if type(m) is str else _method(m) for m in raw["http.request.method"]], list(paths),
              [q or query for q, query in zip(_texts(raw["url.query"]), queries, strict=True)],
              status, [as_int(v) for v in raw["bytes"]], resources, _texts(raw["host.name"]),
              _texts(raw["event.id"]), extra)
    assert len(values) == len(EVENT_ORDER)
    return ParsedColumns(values, ok)


_CONTAINER_TYPES = {dict, list}


def _texts(values: list[Any]) -> list[str | None]:
    """``as_str`` down a column (whose empty texts are already None)."""
    return [v if v is None or type(v) is str else as_str(v) for v in values]


def _time(value: Any) -> Any:
    try:
        return parse_any(value)
    except TimestampError:  # the full path's bad_timestamp
        return _REFUSED


def _method(value: Any) -> str | None:
    method = as_str(value)
    return method.upper() if method and method.isalpha() and len(method) <= 7 else None


def _target(resource: str | None) -> tuple[str | None, str | None]:
    """(path, query) of a resource that is a URL path."""
    if resource and resource.startswith("/"):
        path, _, q = resource.partition("?")
        return path, q or None
    return None, None

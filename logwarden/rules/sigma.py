"""Sigma rules (#15): a Sigma rule becomes a logwarden rule entry.

pySigma reads the rule (its parser, modifiers and condition grammar), a pySigma processing
pipeline renames Sigma's fields for each log source to the fields our parsers fill
(``logwarden/data/sigma-pipeline.yaml``, extended by the user's own pipeline files), and the
parsed condition tree becomes one of our conditions (``all``/``any``/``not`` over ``iequals``,
``icontains``, ``regex``, ``equals``, ``cidr``, comparisons, ``exists``), kept to the log source's
events: a ``match`` rule. Correlation rules become ``threshold``, ``cardinality``, ``temporal`` or
``sequence`` rules over the rules they name. The result is an ordinary rule entry, so it goes
through the same checks as a native one, and ``logwarden rules convert`` prints it for review.

Sigma matches strings ignoring case, with ``*`` and ``?`` wildcards: a plain value is an
``iequals``, ``*value*`` an ``icontains``, anything else a case-insensitive anchored regex (the
values of an ``or`` on one field join into one test). Keywords (values without a field) search
the text fields of the log source (``LogSource.keyword_fields``): the request target and user
agent of a web request, the message of a syslog line.

What cannot be converted (a log source we do not read, a field no parser fills, a modifier or
value type we cannot express) raises ``NotConverted`` with the reason, per rule.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from logwarden.event import known_field

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PIPELINE = Path(__file__).resolve().parents[1] / "data" / "sigma-pipeline.yaml"
LEVELS = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}


class NotConverted(ValueError):
    """A Sigma rule that cannot become a logwarden rule; the message says why."""


@dataclass(frozen=True)
class LogSource:
    name: str
    only: dict[str, Any]  # the condition that keeps the rule to this source's events
    group_by: str
    keyword_fields: tuple[str, ...]


WEB = LogSource("webserver", {"field": "http.request.method", "exists": True}, "source.ip",
                ("url.path", "url.query", "user_agent.original"))
CLOUDTRAIL = LogSource("aws/cloudtrail", {"field": "event.dataset", "equals": "cloudtrail"}, "user.name", ())
KUBERNETES = LogSource("kubernetes/audit", {"field": "event.dataset", "equals": "k8s_audit"}, "user.name", ())
LINUX = LogSource("linux", {"field": "event.dataset", "equals": "syslog"}, "host.name", ("message",))
LINUX_SERVICES = (None, "syslog", "sshd", "auth", "sudo", "cron", "su", "auditd")


def log_source(product: str | None, service: str | None, category: str | None) -> LogSource:
    if category == "webserver" and product in (None, "apache", "nginx", "linux"):
        return WEB
    if product == "aws" and service == "cloudtrail":
        return CLOUDTRAIL
    if product == "kubernetes" and service == "audit":
        return KUBERNETES
    if product == "linux" and category is None and service in LINUX_SERVICES:
        return LINUX
    told = ", ".join(f"{k}: {v}" for k, v in (("product", product), ("service", service), ("category", category))
                     if v is not None)
    raise NotConverted(f"log source {{{told}}} is not one logwarden reads (web servers, aws/cloudtrail, "
                       "kubernetes/audit, linux syslog and auth)")


@cache
def _pipeline(extra: tuple[Path, ...]) -> Any:
    from sigma.processing.pipeline import ProcessingPipeline

    def read(path: Path) -> Any:  # libyaml, as for the rules
        return ProcessingPipeline.from_dict(yaml.load(path.read_text(), Loader=SafeLoader))

    pipeline = read(PIPELINE)
    for path in extra:
        pipeline = pipeline + read(path)
    return pipeline


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "rule"


def convert_text(text: str, pipelines: Sequence[Path] = ()) -> list[tuple[str, dict[str, Any] | NotConverted]]:
    """Each rule of a Sigma YAML text (one or several documents): ``(title, rule entry)``, or
    ``(title, NotConverted)`` with the reason it cannot load."""
    return [(title, result) for _, title, result in convert_texts([(None, text)], pipelines)]


Converted = list[tuple[Path | None, str, dict[str, Any] | NotConverted]]


def convert_texts(items: Sequence[tuple[Path | None, str]], pipelines: Sequence[Path] = (),
                  cache: Path | None = None) -> Converted:
    """The rules of several Sigma files, ``(file, title, entry or NotConverted)``: a correlation
    rule may name rules of any of them. A rule a correlation names is not a rule of its own
    (unless it says ``generate: true``), as Sigma intends.

    ``cache``: a directory where the result is kept under a digest of the files, the pipelines,
    this converter and pySigma's version, so a later run with the same rules skips pySigma
    (importing it and converting 92 rules is most of what they cost a short run)."""
    key = _cache_key(items, pipelines) if cache is not None else None
    if cache is not None and key is not None:
        found = _cached(cache / f"{key}.json")
        if found is not None:
            return found
    out = _convert(items, pipelines)
    if cache is not None and key is not None:
        _keep(cache / f"{key}.json", out)
    return out


def _cache_key(items: Sequence[tuple[Path | None, str]], pipelines: Sequence[Path]) -> str | None:
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    import logwarden.event

    # what a conversion depends on: this converter, the shipped mapping, the fields our parsers keep
    digest = hashlib.sha256(Path(__file__).read_bytes() + PIPELINE.read_bytes() +
                            Path(logwarden.event.__file__).read_bytes())
    try:
        digest.update(version("pysigma").encode())
    except PackageNotFoundError:
        return None
    try:
        for path in pipelines:
            digest.update(b"\0pipeline\0" + path.read_bytes())
    except OSError:
        return None
    for path, text in items:
        digest.update(f"\0{path}\0".encode() + text.encode())
    return digest.hexdigest()


def _cached(path: Path) -> Converted | None:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return [(Path(p) if p is not None else None, title,
             NotConverted(entry["not_converted"]) if "not_converted" in entry else entry)
            for p, title, entry in doc]


def _keep(path: Path, out: Converted) -> None:
    doc = [[str(p) if p is not None else None, title,
            {"not_converted": str(entry)} if isinstance(entry, NotConverted) else entry] for p, title, entry in out]
    try:  # a cache: a read-only home or a full disk only costs the next run the conversion
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        tmp.replace(path)
    except OSError:
        pass


def _convert(items: Sequence[tuple[Path | None, str]], pipelines: Sequence[Path]) -> Converted:
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    out: list[tuple[Path | None, str, dict[str, Any] | NotConverted]] = []
    collections, origin = [], {}
    for path, text in items:
        try:  # libyaml's parser: pySigma's own from_yaml reads with the pure-Python one, 20x slower
            collection = SigmaCollection.from_dicts(list(yaml.load_all(text, Loader=SafeLoader)), collect_errors=True)
        except (SigmaError, yaml.YAMLError) as exc:
            out.append((path, "?", NotConverted(f"not a valid Sigma rule: {exc}")))
            continue
        collections.append(collection)
        origin.update({id(rule): path for rule in collection.rules})
    merged = SigmaCollection.merge(collections, resolve_references=False)
    done: dict[int, dict[str, Any] | NotConverted] = {}
    correlations = [r for r in merged.rules if isinstance(r, SigmaCorrelationRule)]
    for rule in merged.rules:
        if not isinstance(rule, SigmaCorrelationRule):
            done[id(rule)] = _attempt(lambda r=rule: convert_rule(r, pipelines), rule)
    for rule in correlations:
        done[id(rule)] = _attempt(lambda r=rule: convert_correlation(r, merged, done, pipelines), rule)
    for rule in merged.rules:
        if getattr(rule, "_output", True) or isinstance(rule, SigmaCorrelationRule):
            out.append((origin.get(id(rule)), str(getattr(rule, "title", "?")), done[id(rule)]))
    return out


def _attempt(convert: Any, rule: Any) -> dict[str, Any] | NotConverted:
    from sigma.exceptions import SigmaError

    errors = getattr(rule, "errors", None)
    if errors:
        return NotConverted(f"not a valid Sigma rule: {errors[0]}")
    try:
        return convert()  # type: ignore[no-any-return]
    except NotConverted as exc:
        return exc
    except SigmaError as exc:
        return NotConverted(f"pySigma: {exc}")


def convert_rule(rule: Any, pipelines: Sequence[Path] = ()) -> dict[str, Any]:
    """One parsed ``SigmaRule`` as a logwarden ``match`` rule entry."""
    src = log_source(rule.logsource.product, rule.logsource.service, rule.logsource.category)
    _apply(rule, pipelines)
    trees = [cond.parse() for cond in rule.detection.parsed_condition]
    built = [_expand(_node(tree, src), src) for tree in trees]
    where = built[0] if len(built) == 1 else {"any": built}
    return {**_meta(rule, src.group_by), "type": "match", "where": {"all": [src.only, where]}}


def convert_correlation(rule: Any, collection: Any, done: dict[int, Any], pipelines: Sequence[Path] = (),
                        ) -> dict[str, Any]:
    """A Sigma correlation rule as the native rule it is: ``event_count`` a threshold,
    ``value_count`` a cardinality, ``temporal`` a temporal and ``temporal_ordered`` (two rules)
    a sequence rule, in event time like any other."""
    rule.resolve_rule_references(collection)
    bases = []
    for ref in rule.rules:
        base = done.get(id(ref.rule))
        if base is None:
            raise NotConverted(f"its rule {ref.reference!r} is a correlation itself (not supported)")
        if isinstance(base, NotConverted):
            raise NotConverted(f"its rule {ref.rule.title!r} does not convert: {base}")
        bases.append(base)
    _apply(rule, pipelines)
    if len(rule.group_by or []) > 1:
        raise NotConverted(f"group-by on several fields ({', '.join(rule.group_by)}): logwarden rules group by one")
    group_by = str(rule.group_by[0]) if rule.group_by else "event.dataset"  # none: one count per source
    if not known_field(group_by):
        raise NotConverted(f"group-by field {group_by!r} is not one logwarden's parsers keep")
    window = f"{int(rule.timespan.seconds)}s"
    wheres = [copy.deepcopy(b["where"]) for b in bases]
    kind, cond = rule.type.name, rule.condition
    head = _meta(rule, group_by)
    if kind in ("EVENT_COUNT", "VALUE_COUNT"):
        count = _at_least(cond)
        where = wheres[0] if len(wheres) == 1 else {"any": wheres}
        if kind == "EVENT_COUNT":
            return {**head, "type": "threshold", "where": where, "count": count, "window": window}
        field = str(cond.fieldref)
        if not known_field(field):
            raise NotConverted(f"value_count field {field!r} is not one logwarden's parsers keep")
        if count < 2:
            raise NotConverted("value_count below 2 distinct values is a plain match: write it as one")
        return {**head, "type": "cardinality", "where": where, "field": field, "count": count, "window": window}
    if kind == "TEMPORAL":
        if cond is not None and cond.count is not None and cond.count < len(bases):
            raise NotConverted(f"temporal with {cond.count} of {len(bases)} rules: only all of them is supported")
        return {**head, "type": "temporal", "all_of": wheres, "window": window}
    if kind == "TEMPORAL_ORDERED":
        if len(bases) != 2:
            raise NotConverted(f"temporal_ordered over {len(bases)} rules: logwarden's sequence takes two")
        return {**head, "type": "sequence", "first": wheres[0], "then": wheres[1], "count": 1, "window": window}
    raise NotConverted(f"correlation type {kind.lower()} is not supported")


def _at_least(cond: Any) -> int:
    op = cond.op.name
    if op == "GTE":
        return int(cond.count)
    if op == "GT":
        return int(cond.count) + 1
    raise NotConverted(f"condition {op.lower()} {cond.count}: logwarden fires when a count reaches a number "
                       "(gte or gt)")


def _meta(rule: Any, group_by: str) -> dict[str, Any]:
    level = str(rule.level.name).lower() if rule.level is not None else "medium"
    tags = [f"{t.namespace}.{t.name}" for t in rule.tags] + [f"sigma:{rule.id}" if rule.id else "sigma"]
    description = str(rule.title)
    if rule.falsepositives:
        description += " (false positives: " + "; ".join(str(f) for f in rule.falsepositives) + ")"
    return {"id": f"sigma-{slug(str(rule.title))}", "description": description,
            "severity": LEVELS.get(level, "medium"), "group_by": group_by, "tags": tags}


def _apply(rule: Any, pipelines: Sequence[Path]) -> None:
    """The field mapping. A pipeline keeps what it applied to the rule at hand, so each rule gets a
    pipeline of its own over the same items, as pySigma's backends do (a deep copy costs 20x)."""
    from sigma.processing.pipeline import ProcessingPipeline

    (_pipeline(tuple(pipelines)) + ProcessingPipeline()).apply(rule)


# -- the condition tree --------------------------------------------------------------------
# Internally a string test is a tuple (operator, field, [values]): ``iequals``, ``icontains``
# (Sigma's case-insensitive matching without a regex) or ``regex``; field None is a keyword (any
# text field of the log source). An ``or`` joins the tuples of one operator and field into one
# test. Other leaves and the combinators are our condition mappings already.

def _node(n: Any, src: LogSource) -> Any:
    from sigma.conditions import (
        ConditionAND,
        ConditionFieldEqualsValueExpression,
        ConditionNOT,
        ConditionOR,
        ConditionValueExpression,
    )

    if isinstance(n, ConditionAND):
        return {"all": [_expand(_node(a, src), src) for a in n.args]}
    if isinstance(n, ConditionOR):
        return _or([_node(a, src) for a in n.args], src)
    if isinstance(n, ConditionNOT):
        return {"not": _expand(_node(n.args[0], src), src)}
    if isinstance(n, ConditionFieldEqualsValueExpression):
        field = str(n.field)
        if not known_field(field):
            raise NotConverted(f"field {field!r} ({src.name}) is not one logwarden's parsers keep")
        return _leaf(field, n.value)
    if isinstance(n, ConditionValueExpression):
        if not src.keyword_fields:
            raise NotConverted(f"keywords (values without a field) have no text field to search in {src.name}")
        return _string_test(None, n.value)
    raise NotConverted(f"condition element {type(n).__name__} is not supported")


def _or(children: list[Any], src: LogSource) -> Any:
    """An ``or``: the string tests of one operator and field joined into one."""
    joined: dict[tuple[str, str | None], list[str]] = {}
    rest: list[Any] = []
    for child in children:
        if isinstance(child, tuple):
            joined.setdefault((child[0], child[1]), []).extend(child[2])
        elif isinstance(child, dict) and set(child) == {"any"}:
            rest.extend(child["any"])  # a nested or: flattened
        else:
            rest.append(child)
    items = [*((op, field, values) for (op, field), values in joined.items()), *rest]
    if len(items) == 1:
        return items[0]
    return {"any": [_expand(i, src) for i in items]}


def _expand(node: Any, src: LogSource) -> dict[str, Any]:
    if not isinstance(node, tuple):
        return node
    op, field, values = node
    arg: Any = "|".join(values) if op == "regex" else (values[0] if len(values) == 1 else values)
    tests = [{"field": f, op: arg} for f in ([field] if field is not None else src.keyword_fields)]
    return tests[0] if len(tests) == 1 else {"any": tests}


def _leaf(field: str, value: Any) -> Any:
    from sigma.types import (
        SigmaBool,
        SigmaCIDRExpression,
        SigmaCompareExpression,
        SigmaExists,
        SigmaNull,
        SigmaNumber,
        SigmaRegularExpression,
        SigmaString,
    )

    if isinstance(value, SigmaString):
        return _string_test(field, value)
    if isinstance(value, SigmaNumber):
        return {"field": field, "equals": value.number}
    if isinstance(value, SigmaBool):
        return {"field": field, "equals": value.boolean}
    if isinstance(value, SigmaNull):
        return {"field": field, "exists": False}
    if isinstance(value, SigmaExists):
        return {"field": field, "exists": bool(value.exists)}
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted({"IGNORECASE": "i", "MULTILINE": "m", "DOTALL": "s"}.get(f.name, "")
                               for f in value.flags))
        rx = str(value.regexp)
        try:
            re.compile(rx)
        except re.error as exc:
            raise NotConverted(f"regex for {field!r} is not one Python reads: {exc}") from None
        return ("regex", field, [f"(?{flags}:{rx})" if flags else f"(?:{rx})"])
    if isinstance(value, SigmaCIDRExpression):
        return {"field": field, "cidr": str(value.network)}
    if isinstance(value, SigmaCompareExpression):
        op = {"LT": "lt", "LTE": "lte", "GT": "gt", "GTE": "gte"}[value.op.name]
        return {"field": field, op: value.number.number}
    raise NotConverted(f"value {type(value).__name__} on {field!r} is not supported (a modifier such as "
                       "fieldref, base64offset or expand has no logwarden form)")


def _string_test(field: str | None, value: Any) -> tuple[str, str | None, list[str]]:
    """A Sigma string's test: a plain value (or a keyword, or ``*value*``) compares without a
    regex, ignoring case; anything else with wildcards or ``cased`` is a regex."""
    from sigma.types import SigmaCasedString, SigmaString, SpecialChars

    if not isinstance(value, SigmaString):
        value = SigmaString(str(value))
    parts = list(value.s)
    if not isinstance(value, SigmaCasedString):
        inner = parts[1:-1] if len(parts) == 3 and parts[0] == parts[-1] == SpecialChars.WILDCARD_MULTI else None
        if len(parts) == 1 and isinstance(parts[0], str):
            return ("icontains" if field is None else "iequals"), field, [parts[0].lower()]
        if inner is not None and isinstance(inner[0], str):
            return "icontains", field, [inner[0].lower()]
    return "regex", field, [_string_regex(value, keyword=field is None)]


def _string_regex(value: Any, keyword: bool = False) -> str:
    """A Sigma string as a regex: case-insensitive (unless ``cased``), wildcards as ``.*``/``.``,
    anchored for a field, searched anywhere for a keyword."""
    from sigma.types import SigmaCasedString, SigmaString, SpecialChars

    if not isinstance(value, SigmaString):
        value = SigmaString(str(value))
    parts = []
    for part in value.s:
        if isinstance(part, str):
            parts.append(re.escape(part))
        elif part == SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        else:
            raise NotConverted(f"placeholder in {value!s} is not supported")
    body = "".join(parts)
    if not keyword:  # whole value: anchored, the needless .* at either end dropped
        body = ("" if body.startswith(".*") else "^") + body.removeprefix(".*")
        body = body.removesuffix(".*") if body.endswith(".*") else body + "$"
    flags = "s" if isinstance(value, SigmaCasedString) else "is"
    return f"(?{flags}:{body})"


# -- converting on another core while the run starts ---------------------------------------

@dataclass
class Prefetch:
    """Sigma files whose conversion is not cached yet, converted by another process (``python -m
    logwarden.rules.sigma``) into the cache while this one starts (loading the model takes a
    second or two): the run then reads them from the cache, and on a second core their
    conversion costs its start nothing. ``cache``: where the rule loader is to look."""

    process: Any  # subprocess.Popen
    cache: Path
    temporary: Path | None  # no cache configured: a directory of this run's own, removed after

    @classmethod
    def start(cls, items: Sequence[tuple[Path, str]], pipelines: Sequence[Path], cache: Path | None) -> Prefetch | None:
        import subprocess
        import sys
        import tempfile

        key = _cache_key(items, pipelines) if items else None
        if key is None or (cache is not None and (cache / f"{key}.json").exists()):
            return None
        temporary = Path(tempfile.mkdtemp(prefix="logwarden-sigma-")) if cache is None else None
        where = temporary or cache
        assert where is not None
        try:
            proc = subprocess.Popen([sys.executable, "-m", "logwarden.rules.sigma"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert proc.stdin is not None
            proc.stdin.write(orjson.dumps({"files": [str(p) for p, _ in items],
                                           "pipelines": [str(p) for p in pipelines], "cache": str(where)}))
            proc.stdin.close()
        except OSError:  # no second process here: the loader converts, as without this
            if temporary is not None:
                temporary.rmdir()
            return None
        return cls(proc, where, temporary)

    def wait(self, timeout: float = 120) -> None:
        """Until the conversion is in the cache (or has failed: the loader then converts it)."""
        import subprocess

        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def close(self) -> None:
        if self.temporary is not None:
            import shutil

            shutil.rmtree(self.temporary, ignore_errors=True)


def _warm() -> None:
    """``python -m logwarden.rules.sigma``: convert the files named on stdin into the cache."""
    import sys

    doc = orjson.loads(sys.stdin.buffer.read())
    items = [(Path(p), Path(p).read_text()) for p in doc["files"]]
    convert_texts(items, [Path(p) for p in doc["pipelines"]], Path(doc["cache"]))


if __name__ == "__main__":
    _warm()

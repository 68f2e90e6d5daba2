"""Loading rule files: every problem at once, each with file:line and rule id.

A rule file holds ``rules:`` (new rules) and, in local files, ``overrides:`` (disable a
shipped rule, change its parameters, severity, tags or noise budget, add exceptions) so the
shipped pack is never edited. ``logwarden run`` refuses to start on any problem, with the same
messages as ``logwarden rules validate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from logwarden.alerts import SEVERITIES
from logwarden.errors import ConfigError
from logwarden.event import known_field
from logwarden.networks import DEFAULT_INTERNAL, parse_networks
from logwarden.rules import RULE_TYPES
from logwarden.rules.base import Rule, RuleMeta
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import ConditionError, NamedNetworks, Predicate, compile_condition, evaluate, needs_of
from logwarden.rules.sigma import NotConverted, convert_texts

COMMON = ("id", "type", "description", "severity", "tags", "enabled", "budget", "group_by", "link", "where",
          "exceptions", "examples")
OVERRIDABLE = ("enabled", "severity", "tags", "description", "exceptions", "where", "budget", "link")


def default_rule_files() -> list[Path]:
    """The shipped pack: ``rules/default.yaml`` of a checkout, or where the image installs it."""
    for candidate in (Path(__file__).resolve().parents[2] / "rules" / "default.yaml",
                      Path("/usr/share/logwarden/rules/default.yaml")):
        if candidate.is_file():
            return [candidate]
    raise ConfigError("the shipped rule pack rules/default.yaml was not found; pass --rules")


class RuleLoadError(ConfigError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the rules:\n" + "\n".join(problems))


class _LineDict(dict[str, Any]):
    line = 0
    key_lines: dict[str, int] = {}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml: 4x faster
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    out.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@dataclass
class RuleSet:
    rules: list[Rule]
    files: list[Path]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    version: str = ""  # SHA-256 over the files, in order: which rule set was in force
    # Sigma rules that could not be converted ("file: title: why"); loaded only with sigma_partial
    not_loaded: list[str] = field(default_factory=list)
    sigma: int = 0  # how many of ``rules`` came from Sigma files

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.meta.enabled]


@dataclass
class _Raw:
    doc: _LineDict
    path: Path


def rule_files(paths: Sequence[Path]) -> list[Path]:
    """The files of ``--rules``: a folder stands for its ``*.yml``/``*.yaml`` files (recursively,
    in name order), as a Sigma rule repository is laid out."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
                   if path.is_dir() else [path])
    return out


def sigma_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """The Sigma files among ``--rules`` with their text, as ``load_rules`` converts them."""
    out = []
    for path in rule_files(paths):
        try:
            text = path.read_text()
        except OSError:
            continue  # load_rules says so
        if _sigma_text(text):
            out.append((path, text))
    return out


def load_rules(paths: list[Path], internal_networks: Sequence[str] | None = None, *,
               sigma_pipelines: Sequence[Path] = (), sigma_partial: bool = False,
               sigma_cache: Path | None = None) -> RuleSet:
    """``internal_networks``: what ``cidr: internal`` and ``new_term``'s ``granularity: network``
    mean (``LOGWARDEN_INTERNAL_NETWORKS``; default RFC 1918 and the usual cluster ranges).

    A file may be a Sigma rule (detected per file): it is converted (``logwarden.rules.sigma``,
    with ``sigma_pipelines`` after the shipped field mapping). A Sigma rule that cannot be
    converted is a problem, unless ``sigma_partial``: then it is listed in ``not_loaded``."""
    internal = parse_networks(internal_networks or DEFAULT_INTERNAL)
    networks = {"internal": [str(n) for n in internal]}
    problems: list[str] = []
    raws: dict[str, _Raw] = {}
    overrides: list[_Raw] = []
    not_loaded: list[str] = []
    sigma_ids: set[str] = set()
    sigma_files: list[tuple[Path, str]] = []
    digest = hashlib.sha256()
    paths = rule_files(paths)
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        digest.update(path.name.encode() + b"\0" + text.encode())
        if _sigma_text(text):
            sigma_files.append((path, text))  # converted together: a correlation may name another file's rule
            continue
        try:
            doc = yaml.load(text, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.append(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML: {exc}")
            continue
        if not isinstance(doc, dict) or set(doc) - {"rules", "overrides"}:
            problems.append(f"{path}:1: a rule file has 'rules:' and/or 'overrides:' at the top")
            continue
        for kind in ("rules", "overrides"):
            items = doc.get(kind) or []
            if not isinstance(items, list):
                problems.append(f"{path}:{doc.key_lines.get(kind, 1)}: '{kind}' is a list")
                continue
            for item in items:
                if not isinstance(item, _LineDict) or not isinstance(item.get("id"), str):
                    line = item.line if isinstance(item, _LineDict) else "?"
                    problems.append(f"{path}:{line}: every entry needs an 'id'")
                    continue
                if kind == "overrides":
                    overrides.append(_Raw(item, path))
                elif item["id"] in raws:
                    first = raws[item["id"]]
                    problems.append(f"{path}:{item.line} {item['id']}: duplicate id (first at "
                                    f"{first.path}:{first.doc.line}); use 'overrides:' to change it")
                else:
                    raws[item["id"]] = _Raw(item, path)
    if sigma_files:
        _add_sigma(sigma_files, sigma_pipelines, raws, sigma_ids, not_loaded, sigma_cache)
    for ov in overrides:
        _apply_override(ov, raws, problems)
    rules: list[Rule] = []
    examples: dict[str, list[dict[str, Any]]] = {}
    for rid, raw in raws.items():
        rule = _build(raw, problems, networks)
        if rule is not None:
            if getattr(rule, "internal_networks", None) is not None:  # new_term judging addresses by network
                rule = dataclasses.replace(rule, internal_networks=internal)
            rules.append(rule)
            examples[rid] = list(raw.doc.get("examples") or [])
    if not_loaded and not sigma_partial:
        problems += [f"{line} (--sigma-partial runs with the rules that load)" for line in not_loaded]
    if problems:
        raise RuleLoadError(problems)
    return RuleSet(rules, list(paths), examples, digest.hexdigest(), not_loaded,
                   sum(r.meta.id in sigma_ids for r in rules))


_SIGMA_KEYS = re.compile(r"^(?:detection|correlation):", re.MULTILINE)


def _sigma_text(text: str) -> bool:
    """A Sigma file: a top-level ``detection:`` or ``correlation:`` (our rule files have only
    ``rules:`` and ``overrides:``). Read off the text: parsing every file twice would cost more."""
    return _SIGMA_KEYS.search(text) is not None


def _add_sigma(files: list[tuple[Path, str]], pipelines: Sequence[Path], raws: dict[str, _Raw],
               sigma_ids: set[str], not_loaded: list[str], cache: Path | None) -> None:
    for path, title, result in convert_texts(files, pipelines, cache):
        assert path is not None
        if isinstance(result, NotConverted):
            not_loaded.append(f"{path}: {title}: {result}")
            continue
        if result["id"] in raws:  # two Sigma rules of one title: the second by its Sigma id too
            uid = next((t.split(":", 1)[1] for t in result["tags"] if t.startswith("sigma:")), "")
            result["id"] = f"{result['id']}-{uid[:8]}"
        doc = _LineDict(result)
        doc.line, doc.key_lines = 1, {}
        raws[result["id"]] = _Raw(doc, path)
        sigma_ids.add(result["id"])


def _apply_override(ov: _Raw, raws: dict[str, _Raw], problems: list[str]) -> None:
    rid = ov.doc["id"]
    where = f"{ov.path}:{ov.doc.line} {rid}"
    target = raws.get(rid)
    if target is None:
        problems.append(f"{where}: override of an unknown rule")
        return
    rtype = RULE_TYPES.get(str(target.doc.get("type")))
    params = set(rtype.Params.model_fields) if rtype else set()
    merged = _LineDict(target.doc)
    merged.line, merged.key_lines = target.doc.line, dict(target.doc.key_lines)
    for key, value in ov.doc.items():
        if key == "id":
            continue
        if key not in OVERRIDABLE and key not in params:
            problems.append(f"{ov.path}:{ov.doc.key_lines.get(key, ov.doc.line)} {rid}: "
                            f"cannot override {key!r}; overridable: {', '.join(OVERRIDABLE)} and the "
                            f"rule's parameters")
            continue
        merged[key] = [*(target.doc.get(key) or []), *value] if key == "exceptions" else value
        merged.key_lines[key] = ov.doc.key_lines.get(key, ov.doc.line)
    raws[rid] = _Raw(merged, target.path if ov.path == target.path else ov.path)


def _build(raw: _Raw, problems: list[str], networks: NamedNetworks) -> Rule | None:
    doc, path = raw.doc, raw.path
    rid = doc["id"]

    def problem(key: str | None, msg: str) -> None:
        line = doc.key_lines.get(key, doc.line) if key else doc.line
        problems.append(f"{path}:{line} {rid}: {msg}")

    before = len(problems)
    rtype = RULE_TYPES.get(str(doc.get("type")))
    if rtype is None:
        problem("type", f"unknown type {doc.get('type')!r}; known: {', '.join(RULE_TYPES)}")
    for key in ("description", "severity", "group_by"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            problem(key if key in doc else None, f"'{key}' is required (a string)")
    if doc.get("severity") not in SEVERITIES and isinstance(doc.get("severity"), str):
        problem("severity", f"severity {doc['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if isinstance(doc.get("group_by"), str) and not known_field(doc["group_by"]):
        problem("group_by", f"unknown field {doc['group_by']!r}")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problem("tags", "'tags' is a list of strings")
    if not isinstance(doc.get("enabled", True), bool):
        problem("enabled", "'enabled' is true or false")
    link = doc.get("link", [])
    if not isinstance(link, list) or not all(isinstance(f, str) for f in link):
        problem("link", "'link' is a list of ECS field names")
        link = []
    for name in link:
        if not known_field(name):
            problem("link", f"unknown field {name!r} in 'link'")
    budget = _budget(doc, problem)
    where = _condition(doc.get("where"), "where", problem, networks)
    exceptions: list[Predicate] = []
    excs = doc.get("exceptions") or []
    if not isinstance(excs, list):
        problem("exceptions", "'exceptions' is a list of conditions")
        excs = []
    for exc in excs:
        pred = _condition(exc, "exceptions", problem, networks)
        if pred is not None:
            exceptions.append(pred)
    _check_examples(doc.get("examples"), problem)
    if rtype is None:
        return None
    params = {k: v for k, v in doc.items() if k not in COMMON}
    try:
        validated = rtype.Params.model_validate(params)
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else None
            msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            if err["type"] == "missing":
                msg = f"missing parameter for a {rtype.type} rule"
            problem(key, f"{msg} {key!r}" if key else msg)
        return None
    if len(problems) > before or where is None:
        return None
    meta = RuleMeta(rid, doc["description"], doc["severity"], doc["group_by"], tuple(tags),
                    doc.get("enabled", True), budget, tuple(link))
    predicate = where if not exceptions else _without(where, exceptions)
    try:
        return rtype.build(meta, predicate, validated)
    except (ConditionError, ConfigError) as exc:
        problem(None, str(exc))
        return None


def _condition(spec: Any, key: str, problem: Any, networks: NamedNetworks) -> Predicate | None:
    try:
        return compile_condition(spec, networks)
    except ConditionError as exc:
        problem(key, f"{key}: {exc}")
        return None


def _without(where: Predicate, exceptions: list[Predicate]) -> Predicate:
    def pred(e: Any) -> bool:
        return where(e) and not any(x(e) for x in exceptions)

    def by_column(cols: Columns) -> Mask:
        mask = evaluate(where, cols)
        for x in exceptions:
            if not mask.any():
                break
            mask = mask & ~evaluate(x, cols)  # never in place: a mask may be a shared leaf
        return mask

    needs = needs_of(where)
    if needs is not None:
        pred.needs = needs  # type: ignore[attr-defined]
    pred.columns = by_column  # type: ignore[attr-defined]
    return pred


def _budget(doc: dict[str, Any], problem: Any) -> int | Literal["default"] | None:
    """``budget:`` new incidents a day; null (or none) for no limit; absent: the default."""
    if "budget" not in doc:
        return "default"
    value = doc["budget"]
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problem("budget", f"'budget' is a number of new incidents a day (0 or more), or null for no limit, "
                      f"not {value!r}")
    return "default"


def _check_examples(examples: Any, problem: Any) -> None:
    if examples is None:
        return
    if not isinstance(examples, list):
        problem("examples", "'examples' is a list")
        return
    for ex in examples:
        valid = isinstance(ex, dict) and ex.get("expect") in ("alert", "none") and isinstance(ex.get("events"), list)
        if not valid:
            problem("examples", "each example has 'expect: alert|none' and a list of 'events'")

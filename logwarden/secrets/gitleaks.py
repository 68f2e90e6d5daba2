"""gitleaks' rule format: load a ``gitleaks.toml`` and apply its rules to one log line.

The semantics follow gitleaks (v8.25, ``detect/detect.go``) where they apply to a line of a log:
the secret is the rule's ``secretGroup`` or else the first non-empty group; a rule with an
``entropy`` drops secrets whose Shannon entropy is not above it, and a ``generic*`` rule also drops
secrets without a digit; global and per-rule allow-lists (``regexes`` against the secret, the match
or the line; ``stopwords``; ``condition = "AND"``) drop the rest. A log line has no file path and no
commit, so ``paths``/``commits`` allow-list entries never match, and a rule restricted to a kind
of file (``path``: Terraform, nuget.config, PHP, Kubernetes YAML) is skipped and reported.

Two changes to the regexes, both documented in ``docs/secrets.md``:

- Go's RE2 syntax is compiled by google-re2 (Python's ``re`` rejects 26 of the rules and takes
  ~50 µs a line on the generic one), which also keeps matching linear in the line's length.
- gitleaks' usual token end ``(?:[\\x60'"\\s;]|\\\\[nr]|$)`` was written for source files; in a log a
  token also ends at a URL's ``/ ? & #``, at ``, ) ] } < > |`` or at a sentence's ``. : !``, so
  those are accepted as ends too (a token inside ``?ref=TOKEN&page=2`` is found), and so is any
  backslash (a JSON escape such as ``\\"`` after the token), not only ``\\n`` and ``\\r``.

A user file in the same format extends the rule set (``[extend] useDefault``, ``disabledRules``;
a rule with a known ``id`` replaces it, or, without a ``regex``, adds keywords and allow-lists).
"""

from __future__ import annotations

import math
import re
import tomllib
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

import ahocorasick_rs
import re2

from logwarden.errors import ConfigError

_GO_TOKEN_END = """(?:[\\x60'"\\s;]|\\\\[nr]|$)"""
_LOG_TOKEN_END = """(?:[\\x60'"\\s;&,#)\\]}<>|/?.:!\\\\]|$)"""
# the same for the few rules written with their own end (Azure AD client secrets)
_GO_TOKEN_END_2 = """(?:$|[\\\\'"\\x60\\s<),])"""
_LOG_TOKEN_END_2 = """(?:$|[\\\\'"\\x60\\s<),&#/?;\\]}|])"""


def _for_logs(regex: str) -> str:
    return regex.replace(_GO_TOKEN_END, _LOG_TOKEN_END).replace(_GO_TOKEN_END_2, _LOG_TOKEN_END_2)

# gitleaks' "semi-generic" rules (the generic one and ~95 vendors'): any run of up to 50 name
# characters, then a keyword, then an assignment and the secret.
_SEMI_GENERIC = "(?i)[\\w.-]{0,50}?(?:"
_NAME_RUN = re.compile(r"[\w.-]*")  # matched on the reversed text before a keyword

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20  # the generic rule's DFA needs more than RE2's default 8 MiB to stay fast
_OPTIONS.log_errors = False  # a rule that does not compile is reported once, in RuleSet.skipped


def compile_re2(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 1024)]
_HAS_DIGIT = re.compile(r"\d").search


def shannon_entropy(text: str) -> float:
    """Bits per character: log2(n) - sum(c log2 c) / n over the characters' counts c."""
    n = len(text)
    if not n:
        return 0.0
    table = _C_LOG_C
    total = sum(table[c] if c < 1024 else c * math.log2(c) for c in Counter(text).values())
    return math.log2(n) - total / n


def secret_group(m: Any, groups: int, fixed: int = 0) -> int:
    """gitleaks' choice of the secret in a match: the rule's ``secretGroup``, else the first
    non-empty group, else the whole match."""
    if fixed or groups == 0:
        return fixed
    if groups == 1:  # most rules: one group, asked without a generator (10% of a Kubernetes audit log's scan)
        return 1 if m.group(1) else 0
    return next((i for i in range(1, groups + 1) if m.group(i)), 0)


REJECTED = 1024  # near-misses a rule remembers (222 rules: at most ~45 MB however odd the logs)


@dataclass(frozen=True, slots=True)
class Allowlist:
    """One gitleaks allow-list, as far as a log line can match it."""

    regexes: tuple[Any, ...] = ()
    target: str = "secret"  # secret | match | line
    stopwords: tuple[str, ...] = ()
    all_of: bool = False  # condition = "AND"
    has_paths: bool = False  # paths or commits: never true for a log line
    rules: frozenset[str] | None = None  # a global [[allowlists]] entry's targetRules
    # the generic rule has 1,500 stopwords: one automaton pass instead of 1,500 ``in`` checks
    _stops: Any = field(default=None, compare=False, repr=False)
    # (line, answer) of the last line asked about: a ``line`` target is searched once a line, not
    # once per candidate secret in it (4,000 candidates in a 200 KB line took 2 s; 1.2 MB, 84 s)
    _last: tuple[str, bool] = field(default=("", False), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.stopwords:
            object.__setattr__(self, "_stops", ahocorasick_rs.AhoCorasick(list(self.stopwords)))

    def allows(self, secret: str, match: str, line: str) -> bool:
        if self.target == "line":
            last = self._last  # one read: another worker thread may replace it meanwhile
            if last[0] is line:
                regex = last[1]
            else:
                regex = any(r.search(line) for r in self.regexes)
                object.__setattr__(self, "_last", (line, regex))
        else:
            regex = any(r.search(match if self.target == "match" else secret) for r in self.regexes)
        stop = self._stops is not None and bool(self._stops.find_matches_as_indexes(secret.lower()))
        if self.all_of:
            checks = ([False] if self.has_paths else []) + ([regex] if self.regexes else []) + \
                ([stop] if self.stopwords else [])
            return bool(checks) and all(checks)
        return regex or stop


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled gitleaks rule: ``find`` gives the spans of the secrets it finds in a line."""

    id: str
    description: str
    regex: Any  # re2 pattern
    keywords: tuple[str, ...]
    entropy: float = 0.0
    secret_group: int = 0
    allowlists: tuple[Allowlist, ...] = ()
    global_allowlists: tuple[Allowlist, ...] = ()
    priority: int = 0  # 0 a provider's token format; 2 a generic rule (loses overlaps)
    # A semi-generic rule whose matches all begin with one of its keywords: the part after the
    # name run, tried where the keyword pass found a keyword (RE2 searching the whole line for the
    # generic rule took 30-90 µs on a 600-character CloudTrail record; this takes a few).
    anchored: re.Pattern[str] | None = None
    # An anchored rule's keywords, each with the bytes (of the lowered line) that can follow it in
    # a match: the keyword pass drops the others ("api" in "/api/v1/status") before any regex runs.
    follows: dict[str, frozenset[int]] | None = None
    # And, for keywords that end the keyword group, how far a match can run after them before the
    # byte it needs next (the semi-generic rules' name and assignment): see ``Reach``.
    reach: dict[str, Reach] | None = None
    # Every match begins with one of the keywords at a word boundary (``\b(?:AKIA|ASIA|...)``):
    # where no keyword of an ASCII line is at one (``s.`` inside "kubernetes.io"), no regex runs.
    word_start: bool = False
    # Candidates found not to be secrets (too little entropy, or allowed whatever the line), by
    # (secret, match): a source repeats its near-misses (an API version, an account or key id)
    # on line after line, and each verdict costs an entropy count and several re2 calls. Only
    # rejected text is kept: a secret is never held here.
    _rejected: dict[tuple[str, str], None] = field(default_factory=dict, compare=False, repr=False)
    # Of those, the secrets too weak to be one (entropy, or a generic one without a digit): the
    # verdict needs the secret alone, so an anchored match is let go before its name run is read
    # (a Kubernetes audit log's "apiVersion":"audit.k8s.io/v1" on every line).
    _weak: dict[str, None] = field(default_factory=dict, compare=False, repr=False)
    # The regex's group count, read once: RE2 counts them again at each ask (0.75 µs, per candidate)
    _groups: int = field(default=0, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_groups", self.regex.groups)

    def find(self, line: str, at: Sequence[int] = ()) -> Iterator[tuple[int, int]]:
        if self.anchored is not None:
            yield from self._find_anchored(line, at)
            return
        if self.word_start and at and line.isascii() and not any(_word_boundary(line, p) for p in at):
            return
        for m in self.regex.finditer(line):
            span = self._secret(line, m, m.group(0))
            if span is not None:
                yield span

    def _find_anchored(self, line: str, at: Sequence[int]) -> Iterator[tuple[int, int]]:
        assert self.anchored is not None
        end = -1
        weak = self._weak
        for p in sorted(set(at)) if len(at) > 1 else at:
            if p < end:  # inside the previous match (gitleaks' matches do not overlap)
                continue
            m = self.anchored.match(line, p)
            if m is None:
                continue
            end = m.end()
            if weak and m.group(secret_group(m, self._groups, self.secret_group)) in weak:
                continue
            # the match's name run (up to 50 name characters before it), as the lazy prefix would take it
            start = p - _NAME_RUN.match(line[max(0, p - 50):p][::-1]).end()  # type: ignore[union-attr]
            span = self._secret(line, m, line[start:end])
            if span is not None:
                yield span

    def _secret(self, line: str, m: Any, match: str) -> tuple[int, int] | None:
        # the anchored tail has the same groups as the regex (only a non-capturing prefix went)
        group = secret_group(m, self._groups, self.secret_group)
        secret = m.group(group)
        if not secret or (secret, match) in self._rejected or secret in self._weak:
            return None
        if self.entropy and ((self.id.startswith("generic") and not _HAS_DIGIT(secret))
                             or shannon_entropy(secret) <= self.entropy):
            return self._reject(secret, match, "weak")
        for a in self.global_allowlists:
            if (a.rules is None or self.id in a.rules) and a.allows(secret, match, line):
                return self._reject(secret, match, a.target)
        for a in self.allowlists:
            if a.allows(secret, match, line):
                return self._reject(secret, match, a.target)
        return m.span(group)  # type: ignore[no-any-return]

    def _reject(self, secret: str, match: str, target: str = "secret") -> None:
        """Remember a rejection that holds whatever the line (bounded: forgets all, starts again);
        ``weak``: one that holds whatever the match too."""
        if target == "weak":
            if len(self._weak) >= REJECTED:
                self._weak.clear()
            self._weak[secret] = None
        elif target != "line":
            if len(self._rejected) >= REJECTED:
                self._rejected.clear()
            self._rejected[(secret, match)] = None


Follows = dict[str, frozenset[int]]  # per keyword, the bytes that can come right after it in a match


class Reach(NamedTuple):
    """After a keyword, a match runs through at most ``most`` bytes of ``run``, and then has a
    byte of ``then`` (none of which is in ``run``): the generic rule's name and spaces (at most
    23 bytes of name characters, spaces and quotes) before its ``=``, ``:``, ``>``, ``|``, ``?``
    or ``,``."""

    run: frozenset[int]
    most: int
    then: frozenset[int]


def _anchored(pattern: str, keywords: tuple[str, ...]) -> tuple[re.Pattern[str] | None, Follows | None,
                                                                 dict[str, Reach] | None]:
    """The semi-generic pattern without its name run, when Python's ``re`` takes it, it has no
    other top-level branch, and every string its keyword group can match begins with one of the
    rule's keywords; and then, per keyword, the bytes that can follow it in a match (``follows``)
    and how far after it the match needs its next byte (``reach``), each None where not known."""
    if not pattern.startswith(_SEMI_GENERIC) or not keywords:
        return None, None, None
    body = pattern[len(_SEMI_GENERIC):]
    depth, i = 1, 0
    while depth and i < len(body):
        depth += {"(": 1, ")": -1}.get(body[i], 0)
        i += 2 if body[i] == "\\" else 1
    rest = "(?i)(?:" + body
    try:
        with warnings.catch_warnings():  # "possible nested set": Go's [[ is a literal [
            warnings.simplefilter("ignore", FutureWarning)
            tail = re.compile(rest)
            items = list(re._parser.parse("(?i)" + body[i:]))  # type: ignore[attr-defined]
        top = re._parser.parse(rest)  # type: ignore[attr-defined]
        if len(top) == 1 and str(top[0][0]) == "BRANCH":
            return None, None, None
        starts = _expand(re._parser.parse("(?i:" + body[: i - 1] + ")"))  # type: ignore[attr-defined]
    except (re.error, ValueError):
        return None, None, None
    if not all(any(s.lower().startswith(k) for k in keywords) for s in starts):
        return None, None, None
    reach = _reach(items)
    ending = [k for k in keywords if all(s.lower() == k for s in starts if s.lower().startswith(k))]
    return tail, _follows(starts, keywords, _first(items)), \
        {k: reach for k in ending} if reach is not None and ending else None


def _reach(items: list[Any]) -> Reach | None:
    """The ``Reach`` of a pattern's rest after its keyword group: its leading repeats of one
    character (bounded), then what comes next. None when there are none, or when what comes
    next could be empty or begin with a byte of the run."""
    run: set[int] = set()
    most = k = 0
    for op, arg in items:
        if str(op) not in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") or arg[1] > _BOUNDED \
                or arg[2].getwidth() != (1, 1):
            break
        run |= _first(arg[2])[0]
        most += arg[1]
        k += 1
    then, empty = _first(items[k:])
    if not k or empty or then & run:
        return None
    return Reach(frozenset(run), most, then)


_BOUNDED = 1024  # a repeat of more is a run without bound here (``*``, ``+``)


def _follows(starts: list[str], keywords: tuple[str, ...], after: tuple[frozenset[int], bool]) -> Follows | None:
    """Per keyword, the bytes that can come right after it in a match: the next character of a
    longer string of the keyword group, or what the rest of the pattern can begin with. None when
    the rest can match nothing at all (then anything may follow)."""
    first, empty = after
    if empty:
        return None
    out: dict[str, frozenset[int]] = {}
    for k in keywords:
        allowed: set[int] = set()
        for s in (s.lower() for s in starts):
            if s == k:
                allowed |= first
            elif s.startswith(k):
                allowed |= _cased(ord(s[len(k)]))
        out[k] = frozenset(allowed)
    return out


# What ``_first`` knows of a character class, as bytes. Bytes past ASCII stand for any
# non-ASCII character: always allowed (the keyword pass reads only ASCII batches as bytes).
_ANY = frozenset(range(256))
_HIGH = frozenset(range(128, 256))
_WORD = frozenset(b for b in range(128) if chr(b).isalnum() or b == ord("_")) | _HIGH
_SPACE = frozenset(b" \t\n\r\f\v") | _HIGH
_DIGIT = frozenset(b"0123456789") | _HIGH
_CATEGORIES = {"CATEGORY_WORD": _WORD, "CATEGORY_SPACE": _SPACE, "CATEGORY_DIGIT": _DIGIT,
               "CATEGORY_NOT_WORD": _ANY - _WORD | _HIGH, "CATEGORY_NOT_SPACE": _ANY - _SPACE | _HIGH,
               "CATEGORY_NOT_DIGIT": _ANY - _DIGIT | _HIGH}


def _cased(code: int) -> frozenset[int]:
    """A character in both cases (a rule may turn case-insensitivity off; the line is lowered)."""
    char = chr(code)
    return frozenset(ord(c) for c in (char, char.lower(), char.upper()) if len(c) == 1 and ord(c) < 256) | \
        (_HIGH if code >= 128 else frozenset())


def _first(items: Any) -> tuple[frozenset[int], bool]:
    """The bytes a match of ``items`` (``re``'s parsed pattern) can begin with, and whether it
    can match the empty string. Anything it does not know counts as any byte, and as empty."""
    out: set[int] = set()
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            first, empty = _cased(arg), False
        elif name == "NOT_LITERAL" or name == "ANY":
            first, empty = _ANY, False
        elif name == "IN":
            first, empty = _class(arg), False
        elif name == "SUBPATTERN":
            first, empty = _first(arg[3])
        elif name == "BRANCH":
            parts = [_first(branch) for branch in arg[1]]
            first, empty = frozenset().union(*(f for f, _ in parts)), any(e for _, e in parts)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            first, empty = _first(arg[2])
            empty = empty or arg[0] == 0
        elif name == "AT":  # ^ $ \b: match no character
            first, empty = frozenset(), True
        else:  # lookarounds, back-references, atomic groups: not worth knowing
            return _ANY, True
        out |= first
        if not empty:
            return frozenset(out), False
    return frozenset(out), True


def _class(items: Any) -> frozenset[int]:
    out: set[int] = set()
    negate = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            out |= _cased(arg)
        elif name == "RANGE":
            for code in range(arg[0], min(arg[1], 255) + 1):
                out |= _cased(code)
            out |= _HIGH if arg[1] >= 128 else set()
        elif name == "CATEGORY":
            out |= _CATEGORIES.get(str(arg), _ANY)
        else:
            return _ANY
    return _ANY - out | _HIGH if negate else frozenset(out)


def _word_boundary(line: str, at: int) -> bool:
    """RE2's ``\b`` (ASCII word characters) before ``line[at]``."""
    return _is_word(line[at - 1]) != _is_word(line[at]) if 0 < at < len(line) else \
        at < len(line) and _is_word(line[at])


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # on ASCII: [0-9A-Za-z_]


def _word_start(pattern: str, keywords: tuple[str, ...]) -> bool:
    """Every match of ``pattern`` begins with ``\b`` and then one of ``keywords``: each string
    its leading literals can spell starts with one (case aside: the keyword pass ignores it)."""
    if not keywords:
        return False
    try:
        with warnings.catch_warnings():  # "possible nested set": Go's [[ is a literal [
            warnings.simplefilter("ignore", FutureWarning)
            items = list(re._parser.parse(pattern))  # type: ignore[attr-defined]
        if not items or str(items[0][0]) != "AT" or str(items[0][1]) != "AT_BOUNDARY":
            return False
        prefixes, _ = _leading(items[1:])
    except (re.error, ValueError):
        return False
    return all(any(p.lower().startswith(k) for k in keywords) for p in prefixes)


def _leading(items: Any, limit: int = 256) -> tuple[list[str], bool]:
    """Strings one of which begins every match of ``items`` (literals, classes of literals and
    alternations, as far as they go), and whether they are whole matches."""
    out = [""]
    for op, arg in items:
        name = str(op)
        if name == "SUBPATTERN":
            choices, whole = _leading(arg[3], limit)
        elif name == "BRANCH":
            parts = [_leading(branch, limit) for branch in arg[1]]
            choices, whole = [c for p, _ in parts for c in p], all(w for _, w in parts)
        else:
            try:
                choices, whole = _expand([(op, arg)], limit), True
            except ValueError:
                return out, False
        out = [a + b for a, b in product(out, choices)]
        if len(out) > limit:
            raise ValueError("too many")
        if not whole:
            return out, False
    return out, True


def _expand(items: Any, limit: int = 256) -> list[str]:
    """Every string a small regex (literals, classes of literals, alternations, optional parts)
    matches; ValueError for anything else."""
    out = [""]
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            choices = [chr(arg)]
        elif name == "IN" and all(str(o) == "LITERAL" for o, _ in arg):
            choices = [chr(c) for _, c in arg]
        elif name == "BRANCH":
            choices = [s for branch in arg[1] for s in _expand(branch, limit)]
        elif name == "SUBPATTERN":
            choices = _expand(arg[3], limit)
        elif name in ("MAX_REPEAT", "MIN_REPEAT") and arg[:2] == (0, 1):
            choices = ["", *_expand(arg[2], limit)]
        else:
            raise ValueError(name)
        out = [a + b for a, b in product(out, choices)]
        if len(out) > limit:
            raise ValueError("too many")
    return out


@dataclass(slots=True)
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rule id -> why it is not used
    sources: list[str] = field(default_factory=list)  # the files, in load order


def _allowlist(raw: dict[str, Any], where: str) -> Allowlist:
    target = raw.get("regexTarget", "secret")
    if target not in ("secret", "match", "line"):
        raise ConfigError(f"{where}: regexTarget must be secret, match or line, not {target!r}")
    condition = str(raw.get("condition", "OR")).upper()
    if condition not in ("OR", "AND"):
        raise ConfigError(f"{where}: condition must be OR or AND, not {condition!r}")
    sources = list(raw.get("regexes", ()))
    try:
        for r in sources:
            compile_re2(r)
        # one call instead of one per regex (the global list has 13; each call costs ~1 µs)
        regexes = (compile_re2("|".join(f"(?:{r})" for r in sources)),) if sources else ()
    except re2.error as exc:
        raise ConfigError(f"{where}: an allow-list regex does not compile: {exc}") from None
    rules = raw.get("targetRules")
    return Allowlist(regexes, target, tuple(w.lower() for w in raw.get("stopwords", ())),
                     condition == "AND", bool(raw.get("paths") or raw.get("commits")),
                     frozenset(rules) if rules else None)


def _rule_allowlists(raw: dict[str, Any], where: str) -> list[Allowlist]:
    lists = [raw["allowlist"]] if "allowlist" in raw else []
    return [_allowlist(a, where) for a in lists + list(raw.get("allowlists", ()))]


def load(paths: Sequence[Path | str], default: Path) -> RuleSet:
    """The rule set of ``default`` extended by each user file in turn (gitleaks' ``[extend]``)."""
    raw_rules: dict[str, dict[str, Any]] = {}
    extra: dict[str, list[Allowlist]] = {}
    global_lists: list[Allowlist] = []
    disabled: set[str] = set()
    out = RuleSet()
    for n, path in enumerate([default, *paths]):
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"secret rules file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"secret rules file {path} is not valid TOML: {exc}") from None
        extend = doc.get("extend", {})
        if n and extend.get("useDefault") is False and not extend.get("path"):
            raw_rules.clear()
            extra.clear()
            global_lists.clear()
        disabled |= set(extend.get("disabledRules", ()))
        global_lists += _rule_allowlists(doc, f"{path}: global allow-list")
        for i, rule in enumerate(doc.get("rules", ())):
            rid = rule.get("id")
            if not rid or not isinstance(rid, str):
                raise ConfigError(f"{path}: rule #{i + 1} has no id")
            if "regex" in rule or rid not in raw_rules:
                raw_rules[rid] = {**rule, "_file": str(path)}
                extra.pop(rid, None)
            else:  # an extension of a known rule: more keywords, allow-lists, a new entropy
                base = raw_rules[rid]
                base["keywords"] = list(base.get("keywords", ())) + list(rule.get("keywords", ()))
                for key in ("entropy", "secretGroup", "description"):
                    if key in rule:
                        base[key] = rule[key]
                extra.setdefault(rid, []).extend(_rule_allowlists(rule, f"{path}: rule {rid}"))
        out.sources.append(str(path))
    shared = tuple(global_lists)
    for rid, rule in raw_rules.items():
        if rid in disabled:
            out.skipped[rid] = "disabled"
            continue
        if "regex" not in rule:
            out.skipped[rid] = "matches file names only (a path rule without a regex)"
            continue
        if "path" in rule:  # gitleaks applies these to files named like it (.tf, nuget.config, .php, .yaml)
            out.skipped[rid] = f"applies only to files whose path matches {rule['path']}; a log line has none"
            continue
        where = f"{rule['_file']}: rule {rid}"
        try:
            regex = compile_re2(_for_logs(rule["regex"]))
        except re2.error as exc:
            out.skipped[rid] = f"its regex does not compile with RE2: {exc}"
            continue
        group = int(rule.get("secretGroup", 0))
        if group > (regex.groups or 0):
            raise ConfigError(f"{where}: secretGroup {group} but the regex has {regex.groups} groups")
        keywords = tuple(dict.fromkeys(k.lower() for k in rule.get("keywords", ()) if k))
        anchored, follows, reach = _anchored(_for_logs(rule["regex"]), keywords)
        out.rules.append(Rule(
            rid, rule.get("description", ""), regex, keywords, float(rule.get("entropy", 0.0)), group,
            tuple(_rule_allowlists(rule, where)) + tuple(extra.get(rid, ())), shared,
            2 if rid.startswith("generic") else 0, anchored=anchored, follows=follows, reach=reach,
            word_start=_word_start(_for_logs(rule["regex"]), keywords)))
    return out

"""Strings that a gitleaks (Go RE2) regex matches, for planting realistic tokens in test logs.

Go's syntax is first rewritten for Python's parser (``\\z``; ``(?i)`` in the middle of a pattern,
which Go scopes to the rest of its group); then the parse tree is walked with random choices:
uniform characters from each class (so tokens have a real token's entropy), realistic lengths,
and no optional context (``[\\w.-]{0,50}?`` takes nothing, a token's end is the end of the text).
"""

from __future__ import annotations

import random
import re
import string
import warnings
from collections.abc import Iterator
from typing import Any

_parser: Any = re._parser  # type: ignore[attr-defined]
_constants: Any = re._constants  # type: ignore[attr-defined]

_WORD = string.ascii_letters + string.digits + "_"
_PRINTABLE = string.ascii_letters + string.digits + "-_."


def go_to_python(pattern: str) -> str:
    pattern = pattern.replace(r"\z", r"\Z")
    while True:
        k = pattern.find("(?i)", 1)
        if k < 0:
            return pattern
        end = _group_end(pattern, k + 4)
        inner = _split_top(pattern[k + 4:end])
        pattern = pattern[:k] + "|".join(f"(?i:{alt})" for alt in inner) + pattern[end:]


def _structure(p: str, i: int = 0) -> Iterator[tuple[int, str, int]]:
    """``(index, char, depth)`` of each character of ``p`` from ``i`` that is regex structure:
    not escaped, not inside a character class (``[]...]`` included); depth counts open groups."""
    depth, in_class = 0, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if p[i + 1:i + 2] == "]":
                i += 1
        else:
            if c == ")":
                depth -= 1
            yield i, c, depth
            if c == "(":
                depth += 1
        i += 1


def _group_end(p: str, i: int) -> int:
    """Where the group open before ``i`` closes."""
    return next((k for k, c, depth in _structure(p, i) if c == ")" and depth < 0), len(p))


def _split_top(p: str) -> list[str]:
    """``p`` split at its top-level ``|``."""
    cuts = [k for k, c, depth in _structure(p) if c == "|" and depth == 0]
    return [p[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(p)], strict=True)]


def generate(pattern: str, rng: random.Random) -> str:
    """One string the (Go) pattern matches."""
    with warnings.catch_warnings():  # a "[" inside a class of a Go pattern: Python warns "possible nested set"
        warnings.simplefilter("ignore", FutureWarning)
        parsed = _parser.parse(go_to_python(pattern))
    return _gen(parsed, rng, in_group=False)


def _chars(items: list[tuple[Any, Any]]) -> list[str]:
    negate = False
    out: set[str] = set()
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            out.add(chr(arg))
        elif name == "RANGE":
            out.update(chr(c) for c in range(arg[0], arg[1] + 1) if c < 0x7F)
        elif name == "CATEGORY":
            cat = str(arg)
            out.update(string.digits if "DIGIT" in cat and "NOT" not in cat else
                       _WORD if "WORD" in cat and "NOT" not in cat else
                       " " if "SPACE" in cat and "NOT" not in cat else "")
    if negate:
        return [c for c in _PRINTABLE if c not in out]
    # a class that allows a space and other characters: a token does not take the space
    return sorted(out - {" ", "\t", "\n", "\r"}) or sorted(out)


def _gen(items: Any, rng: random.Random, in_group: bool) -> str:
    out = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append(next(c for c in _PRINTABLE if ord(c) != arg))
        elif name == "IN":
            out.append(rng.choice(_chars(arg)))
        elif name == "ANY":
            out.append(".")  # a pattern's "." is most often a sloppy literal dot (hooks.slack.com)
        elif name == "BRANCH":
            branches = arg[1]
            ends = [b for b in branches if any(str(o) == "AT" for o, _ in b)]
            out.append(_gen(ends[0] if ends else rng.choice(branches), rng, in_group))
        elif name == "SUBPATTERN":
            group, body = arg[0], arg[3]
            out.append(_gen(body, rng, in_group or group is not None))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, body = arg
            if hi == _constants.MAXREPEAT:
                hi = lo + 24
            if lo == 0 and not in_group:
                n = 0  # optional context: none
            else:
                n = rng.randint(max(lo, 1 if in_group else lo), max(lo, min(hi, lo + 24)))
            out.extend(_gen(body, rng, in_group) for _ in range(n))
        elif name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            continue
        else:
            raise ValueError(f"cannot generate {name}")
    return "".join(out)

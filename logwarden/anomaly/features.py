"""Per-principal windowed features: one module for training (the notebook, ``logwarden train``) and
serving (the flow), so the two cannot drift.

A principal is the event's user name, else its source address. Events fold into fixed windows
(``WindowStats``: plain, picklable). A closed window becomes a feature vector: absolute features,
then features relative to the principal's own baseline learned from the training data (its usual
count and volume, the resources, addresses and agents it used, the hours it is active), falling
back to its role (service account or person) and then the whole population when it has none.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from logwarden.event import Event

FEATURES = (
    "log_events", "failure_ratio", "log_distinct_resources", "log_distinct_addresses", "log_distinct_agents",
    "log_volume", "log_sensitive_hits", "log_privileged",
    # Time of day counts only against the principal's own hours (idle_hour): night work is
    # normal for an on-call engineer or a batch job, not for an analyst.
    "volume_vs_usual", "events_vs_usual", "new_resource_share", "new_address_share", "new_agent_share",
    "idle_hour",
)
PRIVILEGED_ACTIONS = frozenset({"sudo_command", "su", "StopLogging", "DeleteTrail", "PutEventSelectors",
                                "AttachUserPolicy", "CreateAccessKey", "create", "delete", "patch"})
DEFAULT_SENSITIVE = ("secret", "password", "shadow", "payroll", "customers", "cardholder", "/export", "pii")
MAX_TRACKED = 200  # distinct values kept per window and per baseline set
EVIDENCE = 5  # event ids an anomaly alert cites


def principal_of(e: Event) -> str | None:
    return e.user_name or e.source_ip


def role_of(principal: str) -> str:
    return "service" if principal.startswith(("svc-", "system:serviceaccount:")) else "person"


@dataclass
class WindowStats:
    principal: str
    start: datetime
    events: int = 0
    failures: int = 0
    volume: int = 0
    sensitive: int = 0
    privileged: int = 0
    resources: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    # The window's earliest events by (time, id): the same whatever order they arrived in.
    first: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def evidence(self) -> list[str]:
        return [event_id for _, event_id in self.first]

    def add(self, e: Event, sensitive: tuple[str, ...]) -> None:
        self.events += 1
        self.failures += e.outcome == "failure"
        self.volume += e.bytes or 0
        resource = e.resource or e.url_path
        if resource:
            if len(self.resources) < MAX_TRACKED:
                self.resources.add(resource)
            low = resource.lower()
            self.sensitive += any(s in low for s in sensitive)
        if e.source_ip and len(self.addresses) < MAX_TRACKED:
            self.addresses.add(e.source_ip)
        if e.user_agent and len(self.agents) < MAX_TRACKED:
            self.agents.add(e.user_agent)
        self.privileged += e.action in PRIVILEGED_ACTIONS or (e.extra or {}).get("user.target.name") == "root"
        key = (e.timestamp or self.start, e.id)
        if len(self.first) < EVIDENCE or key < self.first[-1]:
            bisect.insort(self.first, key)
            del self.first[EVIDENCE:]


@dataclass
class Baseline:
    """What is usual for one principal (or a role, or everyone): plain values, JSON-friendly."""

    windows: int = 0
    log_events: float = 0.0  # means over its active windows
    log_volume: float = 0.0
    resources: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    hours: list[int] = field(default_factory=lambda: [0] * 24)

    def absorb(self, w: WindowStats) -> None:
        n = self.windows
        self.log_events = (self.log_events * n + math.log1p(w.events)) / (n + 1)
        self.log_volume = (self.log_volume * n + math.log1p(w.volume)) / (n + 1)
        for mine, theirs in ((self.resources, w.resources), (self.addresses, w.addresses), (self.agents, w.agents)):
            for v in theirs:
                if len(mine) >= MAX_TRACKED:
                    break
                mine.add(v)
        self.hours[w.start.hour] += 1
        self.windows = n + 1

    def usual_hours(self) -> str:
        active = [h for h, c in enumerate(self.hours) if c and c >= 0.05 * max(self.hours)]
        if not active:
            return "no usual hours"
        return f"{min(active):02d}:00-{max(active) + 1:02d}:00"

    def to_json(self) -> dict[str, Any]:
        return {"windows": self.windows, "log_events": self.log_events, "log_volume": self.log_volume,
                "resources": sorted(self.resources), "addresses": sorted(self.addresses),
                "agents": sorted(self.agents), "hours": self.hours}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Baseline:
        return cls(d["windows"], d["log_events"], d["log_volume"], set(d["resources"]), set(d["addresses"]),
                   set(d["agents"]), list(d["hours"]))


@dataclass
class Baselines:
    principals: dict[str, Baseline] = field(default_factory=dict)
    roles: dict[str, Baseline] = field(default_factory=dict)
    population: Baseline = field(default_factory=Baseline)

    @classmethod
    def learn(cls, windows: list[WindowStats]) -> Baselines:
        out = cls()
        for w in windows:
            out.principals.setdefault(w.principal, Baseline()).absorb(w)
            out.roles.setdefault(role_of(w.principal), Baseline()).absorb(w)
            out.population.absorb(w)
        return out

    def for_principal(self, principal: str) -> Baseline:
        return self.principals.get(principal) or self.roles.get(role_of(principal)) or self.population

    def to_json(self) -> dict[str, Any]:
        return {"principals": {k: v.to_json() for k, v in self.principals.items()},
                "roles": {k: v.to_json() for k, v in self.roles.items()}, "population": self.population.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Baselines:
        return cls({k: Baseline.from_json(v) for k, v in d["principals"].items()},
                   {k: Baseline.from_json(v) for k, v in d["roles"].items()}, Baseline.from_json(d["population"]))


def window_start(ts: datetime, width: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // width) * width


def windows_of(events: list[Event], width: timedelta = timedelta(minutes=10),
               sensitive: tuple[str, ...] = DEFAULT_SENSITIVE) -> list[WindowStats]:
    """All windows of these events (training and the notebook; the flow folds the same way)."""
    table: dict[tuple[str, datetime], WindowStats] = {}
    for e in events:
        p = principal_of(e)
        if p is None or e.timestamp is None:
            continue
        start = window_start(e.timestamp, width)
        w = table.get((p, start))
        if w is None:
            w = table[(p, start)] = WindowStats(p, start)
        w.add(e, sensitive)
    return sorted(table.values(), key=lambda w: (w.start, w.principal))


def _share_new(seen: set[str], values: set[str]) -> float:
    if not values:
        return 0.0
    return sum(v not in seen for v in values) / len(values)


def vectorize(windows: list[WindowStats], baselines: Baselines) -> np.ndarray:
    """The feature matrix, columns in ``FEATURES`` order."""
    X = np.empty((len(windows), len(FEATURES)), dtype=np.float64)
    for i, w in enumerate(windows):
        b = baselines.for_principal(w.principal)
        log_events, log_volume = math.log1p(w.events), math.log1p(w.volume)
        X[i] = (log_events, w.failures / w.events if w.events else 0.0, math.log1p(len(w.resources)),
                math.log1p(len(w.addresses)), math.log1p(len(w.agents)), log_volume, math.log1p(w.sensitive),
                math.log1p(w.privileged),
                # one-sided: doing less than usual is not what we look for
                max(0.0, log_volume - b.log_volume), max(0.0, log_events - b.log_events),
                _share_new(b.resources, w.resources), _share_new(b.addresses, w.addresses),
                _share_new(b.agents, w.agents), 1.0 / (1.0 + b.hours[w.start.hour]))
    return X


def explain(w: WindowStats, x: np.ndarray, mean: np.ndarray, std: np.ndarray, baselines: Baselines,
            top: int = 3) -> list[str]:
    """The features that made the window unusual, each with its value and the usual one."""
    b = baselines.for_principal(w.principal)
    z = (x - mean) / np.where(std > 0, std, 1.0)  # signed: every feature grows with suspicion
    out: list[str] = []
    for j in np.argsort(-z):
        if z[j] <= 0:
            break
        name = FEATURES[int(j)]
        text = _describe(name, w, b)
        if text and text not in out:
            out.append(text)
        if len(out) >= top:
            break
    return out


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _describe(name: str, w: WindowStats, b: Baseline) -> str | None:
    if name in ("log_volume", "volume_vs_usual"):
        return f"volume (bytes/rows) {_human(w.volume)}, usual {_human(math.expm1(b.log_volume))}"
    if name in ("log_events", "events_vs_usual"):
        return f"events {w.events}, usual {_human(math.expm1(b.log_events))}"
    if name == "idle_hour":
        return f"active at {w.start.hour:02d}:00, usually {b.usual_hours()}"
    if name in ("new_address_share", "log_distinct_addresses"):
        new = sorted(a for a in w.addresses if a not in b.addresses)[:3]
        return f"{len(new)} new source address(es) {', '.join(new)}" if new else None
    if name in ("new_agent_share", "log_distinct_agents"):
        new = sorted(a for a in w.agents if a not in b.agents)[:2]
        return f"new client(s) {'; '.join(a[:40] for a in new)}" if new else None
    if name in ("new_resource_share", "log_distinct_resources"):
        new = sum(r not in b.resources for r in w.resources)
        return f"{len(w.resources)} resources, {new} never used before" if w.resources else None
    if name == "failure_ratio":
        return f"{w.failures} of {w.events} events failed"
    if name == "log_sensitive_hits":
        return f"{w.sensitive} sensitive-resource hits" if w.sensitive else None
    if name == "log_privileged":
        return f"{w.privileged} privileged actions" if w.privileged else None
    return None

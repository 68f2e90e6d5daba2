"""Per-principal windowed features: one module for training (the notebook, ``logwarden train``) and
serving (the flow), so the two cannot drift.

Who is modelled. A principal is an *identified* account: a person's user name or a service
account (``svc-*``, ``system:serviceaccount:*``, configurable). Anonymous clients (an address with
no user) are left to the rules: one visitor has no personal baseline, and "new address" is
degenerate for a principal that *is* an address. A failed login names a claimed identity, not an
identified one, so it is the rules' business too.

How it learns. Events fold into fixed windows (``WindowStats``). Windows are taken in time order,
*prequentially*: each window is described against what its principal's ``Baseline`` held before
it (its usual count and volume, the resources, networks and clients it used, the hours it is
active), then absorbed into it. Training does exactly this over history, so the forest sees the
same kind of rows the flow will give it. A principal is scored only once its baseline is ready
(``Gate``: at least ``min_windows`` windows, learned over at least ``warmup`` of event time);
before that it learns and never alerts. That is the cold start: a model fitted elsewhere does not
judge this organisation's principals against someone else's habits.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from logwarden.event import Event
from logwarden.rows import EventRows
from logwarden.timeutil import EPOCH

FEATURES = (
    "log_events", "failure_ratio", "log_distinct_resources", "log_distinct_networks", "log_distinct_agents",
    "log_volume", "log_sensitive_hits", "privileged_vs_usual",
    # Time of day counts only against the principal's own hours (idle_hour: how rarely it was
    # active within an hour of this one): night work is normal for an on-call engineer or a batch
    # job, not for an analyst. Privileged actions count above the principal's usual (a deploy
    # account patches all day).
    "volume_vs_usual", "events_vs_usual", "new_resource_share", "new_network_share", "new_agent_share",
    "idle_hour",
)
PRIVILEGED_ACTIONS = frozenset({"sudo_command", "su", "StopLogging", "DeleteTrail", "PutEventSelectors",
                                "AttachUserPolicy", "CreateAccessKey", "create", "delete", "patch"})
# Attempts to log in: when they fail, the user name is a claim, not an identity.
LOGIN_ACTIONS = frozenset({"ssh_login", "ssh_invalid_user", "ConsoleLogin", "login", "signin"})
DEFAULT_SENSITIVE = ("secret", "password", "shadow", "payroll", "customers", "cardholder", "/export", "pii")
DEFAULT_SERVICE_PATTERNS = ("svc-*", "system:serviceaccount:*")
MAX_TRACKED = 200  # distinct values kept per window and per baseline set
SCORE_SIGMAS, MIN_SCORES = 3.0, 12  # a principal's own score bound, once it has this many scores
EVIDENCE = 5  # event ids an anomaly alert cites


def principal_of(e: Event) -> str | None:
    """The identified account an event belongs to, or None (anonymous, or a failed login)."""
    if e.user_name is None or (e.outcome == "failure" and (e.category == "authentication"
                                                            or e.action in LOGIN_ACTIONS)):
        return None
    return e.user_name


def principals_of(events: EventRows) -> list[tuple[str, Event]]:
    """``(principal_of(e), e)`` for each event of a batch that has a principal, read by column:
    only those events are built."""
    users = events.column("user.name")
    assert users is not None
    if users.count(None) == len(users):  # a web log's batch, mostly: nobody signed in (asked in C)
        return []
    rows = [k for k, user in enumerate(users) if user is not None]
    if not rows:
        return []
    outcomes, categories, actions = (events.column(f) for f in ("event.outcome", "event.category", "event.action"))
    return [(users[k], events[k]) for k in rows  # type: ignore[misc]
            if not (outcomes[k] == "failure" and (categories[k] == "authentication"  # type: ignore[index]
                                                  or actions[k] in LOGIN_ACTIONS))]  # type: ignore[index]


def kind_of(principal: str, service_patterns: Iterable[str] = DEFAULT_SERVICE_PATTERNS) -> str:
    """``service`` or ``user`` (anonymous clients never become principals)."""
    return "service" if any(fnmatch.fnmatchcase(principal, p) for p in service_patterns) else "user"


def network_of(address: str) -> str:
    """The network an address belongs to: a private IPv4 address's /16 (an office, a VPN pool, a
    cluster's pod range, a CI runner pool), a public one's /24, an IPv6 address's /64. DHCP,
    Wi-Fi, pods and runners move people and workloads between addresses all day; a new network
    means more."""
    parts = address.split(".")
    # Every event of a principal asks: a dotted quad is answered from whether its /16 is private,
    # cached (Python's private ranges are whole /16s or larger, but in the four /16s of MIXED).
    if len(parts) == 4 and all(p in _OCTETS for p in parts):
        a, b, c, _ = parts
        if f"{a}.{b}" in _MIXED:
            return _network_of(address)
        return f"{a}.{b}.0.0/16" if _private_16(a, b) else f"{a}.{b}.{c}.0/24"
    return _network_of(address)


_OCTETS = frozenset(str(n) for n in range(256))  # as ipaddress reads them: ASCII, no leading zero
# /16s holding private networks smaller than themselves: 192.0.0.0/29, 192.0.0.170/31, 192.0.2.0/24,
# 198.51.100.0/24, 203.0.113.0/24, 255.255.255.255/32 (a test checks this against ipaddress).
_MIXED = frozenset({"192.0", "198.51", "203.0", "255.255"})


@functools.lru_cache(maxsize=65_536)
def _private_16(a: str, b: str) -> bool:
    return ipaddress.ip_address(f"{a}.{b}.0.1").is_private


# Every event of a principal asks; its addresses and resources repeat: each answered once.
_network = functools.lru_cache(maxsize=16_384)(network_of)


@functools.lru_cache(maxsize=16_384)
def _is_sensitive(resource: str, sensitive: tuple[str, ...]) -> bool:
    low = resource.lower()
    return any(s in low for s in sensitive)


def _network_of(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    bits = 64 if ip.version == 6 else 16 if ip.is_private else 24
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


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
    networks: set[str] = field(default_factory=set)
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
            self.sensitive += _is_sensitive(resource, sensitive)
        if e.source_ip and len(self.networks) < MAX_TRACKED:
            self.networks.add(_network(e.source_ip))
        if e.user_agent and len(self.agents) < MAX_TRACKED:
            self.agents.add(e.user_agent)
        self.privileged += e.action in PRIVILEGED_ACTIONS or (e.extra or {}).get("user.target.name") == "root"
        when = e.timestamp or self.start
        # the id (a hash) only when the event may be among the earliest
        if len(self.first) < EVIDENCE or (when <= self.first[-1][0] and (when, e.id) < self.first[-1]):
            bisect.insort(self.first, (when, e.id))
            del self.first[EVIDENCE:]


@dataclass
class Baseline:
    """What is usual for one principal: plain values, JSON-friendly, picklable."""

    windows: int = 0
    log_events: float = 0.0  # means over its active windows
    log_volume: float = 0.0
    resources: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    first: datetime | None = None  # the start of the first window it learned from
    log_privileged: float = 0.0
    # The model's scores of its own past windows (mean and M2, Welford): an alert must stand out
    # from what is usual *for this principal*, not only from the training population.
    score_n: int = 0
    score_mean: float = 0.0
    score_m2: float = 0.0

    def learn_score(self, score: float) -> None:
        self.score_n += 1
        delta = score - self.score_mean
        self.score_mean += delta / self.score_n
        self.score_m2 += delta * (score - self.score_mean)

    def score_bound(self, k: float = SCORE_SIGMAS) -> float | None:
        """Above its usual scores by ``k`` standard deviations; None until it has enough of them."""
        if self.score_n < MIN_SCORES:
            return None
        return self.score_mean + k * math.sqrt(self.score_m2 / self.score_n)

    def absorb(self, w: WindowStats) -> None:
        n = self.windows
        self.log_events = (self.log_events * n + math.log1p(w.events)) / (n + 1)
        self.log_volume = (self.log_volume * n + math.log1p(w.volume)) / (n + 1)
        self.log_privileged = (self.log_privileged * n + math.log1p(w.privileged)) / (n + 1)
        for mine, theirs in ((self.resources, w.resources), (self.networks, w.networks), (self.agents, w.agents)):
            for v in theirs:
                if len(mine) >= MAX_TRACKED:
                    break
                mine.add(v)
        self.hours[w.start.hour] += 1
        self.windows = n + 1
        if self.first is None or w.start < self.first:
            self.first = w.start

    def usual_hours(self) -> str:
        return usual_hours(self.hours)

    def to_json(self) -> dict[str, Any]:
        return {"windows": self.windows, "log_events": self.log_events, "log_volume": self.log_volume,
                "resources": sorted(self.resources), "networks": sorted(self.networks),
                "agents": sorted(self.agents), "hours": self.hours,
                "first": self.first.isoformat() if self.first else None, "log_privileged": self.log_privileged,
                "scores": [self.score_n, self.score_mean, self.score_m2]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Baseline:
        first = datetime.fromisoformat(d["first"]) if d.get("first") else None
        n, mean, m2 = d.get("scores", (0, 0.0, 0.0))
        return cls(d["windows"], d["log_events"], d["log_volume"], set(d["resources"]), set(d["networks"]),
                   set(d["agents"]), list(d["hours"]), first, d.get("log_privileged", 0.0), int(n), mean, m2)

    def copy(self) -> Baseline:
        return Baseline(self.windows, self.log_events, self.log_volume, set(self.resources), set(self.networks),
                        set(self.agents), list(self.hours), self.first, self.log_privileged, self.score_n,
                        self.score_mean, self.score_m2)

    def near_hour(self, hour: int) -> int:
        """Windows it was active in within an hour of this one (the hours wrap around midnight)."""
        return self.hours[(hour - 1) % 24] + self.hours[hour] + self.hours[(hour + 1) % 24]


def usual_hours(hours: Sequence[int]) -> str:
    """The span of the hours with at least 5% of the busiest hour's windows."""
    active = [h for h, c in enumerate(hours) if c and c >= 0.05 * max(hours)]
    if not active:
        return "no usual hours"
    return f"{min(active):02d}:00-{max(active) + 1:02d}:00"


@dataclass(frozen=True)
class Gate:
    """When a principal's baseline is ready to judge it: ``min_windows`` windows learned over at
    least ``warmup`` of event time. Until then it learns silently."""

    warmup: timedelta = timedelta(days=1)
    min_windows: int = 6

    def ready(self, b: Baseline, start: datetime) -> bool:
        return b.windows >= self.min_windows and b.first is not None and start - b.first >= self.warmup

    def to_json(self) -> dict[str, Any]:
        return {"warmup": self.warmup.total_seconds(), "min_windows": self.min_windows}


@dataclass
class Contrast:
    """What a window did against its baseline, kept for the explanation (which is written only
    for windows that turn out anomalous, after the baseline has moved on)."""

    events: int
    failures: int
    volume: int
    sensitive: int
    privileged: int
    resources: int
    new_resources: int
    new_networks: list[str]
    new_agents: list[str]
    usual_events: float
    usual_volume: float
    usual_privileged: float
    hour: int
    hour_seen: int  # windows it was active within an hour of that one before
    hours: tuple[int, ...]  # the baseline's windows per hour of the day, then

    @property
    def usual_hours(self) -> str:  # written only for the explanation of an anomalous window
        return usual_hours(self.hours)


@dataclass
class Row:
    """One window to score: its feature vector, what explains it, and its principal's baseline.
    A row that is not ``ready`` (its baseline still warming up) is scored only to learn what the
    principal's usual scores are; it never alerts."""

    window: WindowStats
    x: np.ndarray
    contrast: Contrast
    baseline: Baseline
    ready: bool = True


def window_start(ts: datetime, width: timedelta) -> datetime:
    return EPOCH + ((ts - EPOCH) // width) * width


def windows_of(events: list[Event], width: timedelta = timedelta(minutes=10),
               sensitive: tuple[str, ...] = DEFAULT_SENSITIVE) -> list[WindowStats]:
    """All windows of these events, in time order (training and the notebook; the flow folds the
    same way)."""
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


def _share(new: set[str], values: set[str]) -> float:
    """The share of ``values`` that is ``new`` (a subset of them)."""
    return len(new) / len(values) if values else 0.0


def featurize(w: WindowStats, b: Baseline) -> Row:
    """The window against its principal's baseline as it stood before the window."""
    log_events, log_volume = math.log1p(w.events), math.log1p(w.volume)
    # what the window holds that the baseline has not seen: for its features and its contrast
    new_resources, new_networks, new_agents = w.resources - b.resources, w.networks - b.networks, w.agents - b.agents
    near = b.near_hour(w.start.hour)
    x = np.array((
        log_events, w.failures / w.events if w.events else 0.0, math.log1p(len(w.resources)),
        math.log1p(len(w.networks)), math.log1p(len(w.agents)), log_volume, math.log1p(w.sensitive),
        max(0.0, math.log1p(w.privileged) - b.log_privileged),
        # one-sided: doing less than usual is not what we look for
        max(0.0, log_volume - b.log_volume), max(0.0, log_events - b.log_events),
        _share(new_resources, w.resources), _share(new_networks, w.networks),
        _share(new_agents, w.agents), 1.0 / (1.0 + near)), dtype=np.float64)
    contrast = Contrast(
        w.events, w.failures, w.volume, w.sensitive, w.privileged, len(w.resources), len(new_resources),
        sorted(new_networks)[:3], sorted(new_agents)[:2],
        math.expm1(b.log_events), math.expm1(b.log_volume), math.expm1(b.log_privileged), w.start.hour,
        near, tuple(b.hours))
    return Row(w, x, contrast, b)


def prequential(windows: Iterable[WindowStats], baselines: dict[str, Baseline], gate: Gate) -> list[Row]:
    """Windows in time order: each becomes a row against its baseline once that has
    ``min_windows`` windows (``ready`` once past the warm-up too), then every window is absorbed
    into its principal's baseline (``baselines`` is updated in place)."""
    rows: list[Row] = []
    for w in windows:
        b = baselines.get(w.principal)
        if b is None:
            b = baselines[w.principal] = Baseline()
        if b.windows >= gate.min_windows:
            row = featurize(w, b)
            row.ready = gate.ready(b, w.start)
            rows.append(row)
        b.absorb(w)
    return rows


def matrix(rows: list[Row]) -> np.ndarray:
    if not rows:
        return np.zeros((0, len(FEATURES)))
    return np.vstack([r.x for r in rows])


def explain(row: Row, mean: np.ndarray, std: np.ndarray, top: int = 3) -> list[str]:
    """The features that made the window unusual, each with its value and the usual one."""
    z = (row.x - mean) / np.where(std > 0, std, 1.0)  # signed: every feature grows with suspicion
    out: list[str] = []
    for j in np.argsort(-z):
        if z[j] <= 0:
            break
        text = _describe(FEATURES[int(j)], row.contrast)
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


def _describe(name: str, c: Contrast) -> str | None:
    if name in ("log_volume", "volume_vs_usual"):
        return f"volume (bytes/rows) {_human(c.volume)}, usual {_human(c.usual_volume)}"
    if name in ("log_events", "events_vs_usual"):
        return f"events {c.events}, usual {_human(c.usual_events)}"
    if name == "idle_hour":
        before = "never before around that hour" if not c.hour_seen else \
            f"{c.hour_seen} time(s) before around that hour"
        return f"active at {c.hour:02d}:00, {before} (usually {c.usual_hours})"
    if name in ("new_network_share", "log_distinct_networks"):
        return f"from network(s) never used before: {', '.join(c.new_networks)}" if c.new_networks else None
    if name in ("new_agent_share", "log_distinct_agents"):
        return f"new client(s) {'; '.join(a[:40] for a in c.new_agents)}" if c.new_agents else None
    if name in ("new_resource_share", "log_distinct_resources"):
        return f"{c.resources} resources, {c.new_resources} never used before" if c.resources else None
    if name == "failure_ratio":
        return f"{c.failures} of {c.events} events failed" if c.failures else None
    if name == "log_sensitive_hits":
        return f"{c.sensitive} sensitive-resource hits" if c.sensitive else None
    if name == "privileged_vs_usual":
        return f"{c.privileged} privileged actions, usual {_human(c.usual_privileged)}" if c.privileged else None
    return None

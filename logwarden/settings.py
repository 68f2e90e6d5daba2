"""The one typed, frozen settings object. Built once at the entry point, never at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from logwarden.networks import DEFAULT_INTERNAL, parse_networks
from logwarden.timeutil import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}


def _size(value: object) -> object:
    """A size in characters: ``65536``, ``64KiB``, ``1MiB``, ``100k``."""
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number):]
        if not number.isdigit() or unit not in _UNITS:
            raise ValueError(f"a size such as 65536, 64KiB or 1MiB, not {value!r}")
        return int(number) * _UNITS[unit]
    return value


Size = Annotated[int, BeforeValidator(_size)]


def _id_list(value: object) -> object:
    """A JSON list, or ids separated by commas or spaces (``U01ABC,S02DEF``)."""
    if isinstance(value, str):
        text = value.strip()
        return orjson.loads(text) if text.startswith("[") else [v for v in text.replace(",", " ").split() if v]
    return value


class Settings(BaseSettings):
    """Every setting also reads ``LOGWARDEN_<NAME>`` from the environment.

    No ``.env`` file is read: docker compose injects its env file as environment variables, and
    a dotenv source would reject the compose-only variables (``REDIS_PASSWORD``) it shares."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_", extra="forbid", frozen=True)

    rules: list[Path] | None = Field(None, description="rule files, in order; default: the shipped pack")
    sigma_partial: bool = Field(False, description="start with the Sigma rules that convert and list the "
                                "others; without it, a Sigma rule that cannot be converted stops the run")
    sigma_pipelines: list[Path] = Field([], description="pySigma processing pipeline files (JSON list) applied "
                                        "after the shipped field mapping, for fields of your own")
    cache_dir: Path | None = Field(default_factory=lambda: _default_cache(), description="where converted Sigma "
                                   "rules are kept between runs (default: $XDG_CACHE_HOME/logwarden, else "
                                   "~/.cache/logwarden); empty: no cache")
    standard_profile: Path | None = Field(None, description="logging-standard YAML; default: shipped")
    json_mapping: Path | None = Field(None, description="YAML of extra JSON/logfmt field aliases")
    secret_rules: list[Path] = Field([], description="gitleaks-format TOML files that add, replace or "
                                     "disable secret rules, in order (JSON list); the shipped set stays")
    syslog_year: int | None = Field(None, description="year for RFC 3164 lines; default: inferred")
    max_line: Size = Field(64 * 1024, ge=1024, description="longest line parsed (characters; 64KiB, 1MiB): "
                           "a longer one is a too_long violation with a short redacted excerpt")
    allowed_lateness: Duration | None = Field(
        None, description="live runs: one allowed lateness for every source without its own "
        "(default: per format, CloudTrail 10m, Kubernetes audit 30s, JSON 5s, others 1s)")
    source_lateness: dict[str, Duration] = Field(
        default_factory=dict, description="allowed lateness per format name or source glob (JSON), "
        'e.g. {"cloudtrail": "15m", "logs/edge-*.log": "3s"}')
    batch_size: int = Field(1000, ge=1, le=100_000, description="lines per input batch")
    workers: int = Field(1, ge=1, le=64, description="Bytewax worker threads in this process")
    follow_poll: Duration = Field(timedelta(milliseconds=100), description="tail poll interval (at a file's end)")
    scorecard_interval: Duration = Field(timedelta(seconds=30),
                                         description="how often a following run writes its scorecard")
    kafka_config: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra librdkafka settings (JSON), e.g. SASL credentials")
    inputs: list[str] = Field(default_factory=list, description="run's inputs when no --input is given (JSON list)")
    stream_field: str = Field("line", min_length=1, description="the Redis stream entry field holding the raw line")
    stream_poll: Duration = Field(timedelta(milliseconds=50), description="Redis stream / Kafka poll when idle")

    # Crash recovery and scale-out (Bytewax).
    recovery_dir: Path | None = Field(None, description="Bytewax recovery database: resume after a crash")
    snapshot_interval: Duration = Field(timedelta(seconds=10), description="how often state is snapshot")
    process_id: int | None = Field(None, ge=0, description="this process's index in a cluster (with addresses)")
    addresses: list[str] | None = Field(None, description="host:port of every process of a cluster, in order")
    log_format: Literal["console", "json"] = Field("console", description="logs on stderr: for people or JSON")

    # Incidents (Redis when LOGWARDEN_REDIS_URL is set, else in memory for the run).
    redis_url: SecretStr | None = Field(None, description="redis:// or rediss:// URL, may hold user:password")
    redis_prefix: str = Field("logwarden:", description="key prefix in Redis")
    incident_resolve_after: Duration = Field(timedelta(hours=1), description="auto-resolve after this quiet")
    incident_repeat_interval: Duration = Field(timedelta(hours=4), description="re-notify a still-firing incident")
    incident_retention: Duration = Field(timedelta(days=7), description="resolved incidents expire after this")
    incident_group_by: Literal["entity", "rule,entity"] = Field(
        "entity", description="entity: one incident per entity (and the entities its alerts link), whatever "
        "the rule; rule,entity: one per rule and entity")
    incident_group_window: Duration = Field(timedelta(hours=1), description="an entity's alerts join its incident "
                                            "within this long after its last alert (event time)")
    # Noise budget: new incidents a detector may open per UTC day of its alerts' event time; past
    # it, that day's further new alerts of the detector fold into one over-budget incident.
    # "none" lifts the limit. A rule's own `budget:` (YAML) wins over rule_budget.
    rule_budget: Annotated[
        int | None, BeforeValidator(lambda v: None if str(v).lower() in ("none", "null") else v)
    ] = Field(10, ge=0, description="new incidents a day of a rule without its own 'budget:'")
    model_budget: Annotated[
        int | None, BeforeValidator(lambda v: None if str(v).lower() in ("none", "null") else v)
    ] = Field(5, ge=0, description="new incidents a day of the anomaly model")

    # Slack: a bot token and channel, or an incoming webhook.
    slack_token: SecretStr | None = Field(None, description="bot token (xoxb-...)")
    slack_channel: str | None = Field(None, description="default channel for the bot token")
    slack_webhook_url: SecretStr | None = Field(None, description="incoming webhook URL")
    slack_api_url: str | None = Field(None, description="Web API base URL (gateways, GovSlack, tests)")
    slack_min_severity: Literal["low", "medium", "high", "critical"] = "low"
    slack_routes: dict[str, str] = Field(default_factory=dict, description="rule id glob -> channel")
    slack_digest_threshold: int = Field(5, ge=1, description="more new incidents at once: one digest")
    slack_min_interval: Duration = Field(timedelta(seconds=1), description="pause between posts to a channel")
    slack_timeout: Duration = Field(timedelta(seconds=10), description="HTTP timeout of one Slack call")
    # Acting from Slack (`logwarden slack serve`): buttons on each message and `/logwarden`.
    slack_signing_secret: SecretStr | None = Field(None, description="the Slack app's signing secret: "
                                                   "verifies its requests; set, messages carry buttons")
    slack_responders: Annotated[list[str], NoDecode, BeforeValidator(_id_list)] = Field(
        default_factory=list, description="Slack user (U...) or user-group (S...) ids who may change "
        "incidents from Slack; empty: everyone in the channel")
    notify_lease: Duration = Field(timedelta(seconds=30), ge=timedelta(seconds=1),
                                   description="after a crash, another process takes over a delivery this late")
    notify_drain_timeout: Duration = Field(timedelta(seconds=60),
                                           description="how long a finite run waits to deliver at its end")

    # The audit trail (off unless a directory is given; the demo turns it on).
    audit_dir: Path | None = Field(None, description="where the tamper-evident trail lives")
    audit_key: SecretStr | None = Field(None, description="HMAC key of the chain (>= 16 bytes)")
    audit_encryption_key: SecretStr | None = Field(None, description="64 hex chars: AES-256-GCM at rest")
    audit_events: bool = Field(True, description="archive normalized, redacted events too")
    audit_fsync: Literal["always", "seal", "never"] = Field("seal", description="when writes reach the disk")
    audit_segment_records: int = Field(50_000, ge=10, description="records per segment before it is sealed")
    audit_retention_events: Duration = Field(timedelta(days=365), description="PCI DSS 10.5.1: a year")
    audit_retention_decisions: Duration = Field(timedelta(days=365), description="how long decisions are kept")
    audit_retention_sources: dict[str, Duration] = Field(
        default_factory=dict, description="per-source retention: source glob -> duration, e.g. {'*/pci/*': '400d'}")
    audit_legal_holds: list[str] = Field(default_factory=list,
                                         description="periods never purged: 'FROM..TO' (ISO dates) or 'all'")
    model: Path | None = Field(None, description="anomaly model (NAME.skops + card); default: the shipped one")
    model_enabled: bool = Field(True, description="score per-principal windows with the model")
    feature_window: Duration = Field(timedelta(minutes=10), description="the model's window width")
    model_warmup: Duration = Field(timedelta(days=1), description="event time a principal's baseline is learned "
                                   "before the model may alert on it (a cold start learns silently)")
    model_min_windows: int = Field(6, ge=1, description="windows a principal's baseline needs before scoring")
    service_accounts: list[str] = Field(["svc-*", "system:serviceaccount:*"],
                                        description="user-name globs of service accounts (JSON list)")
    internal_networks: list[str] = Field(
        list(DEFAULT_INTERNAL),
        description="CIDRs of the organisation's own networks ('cidr: internal' in rules; JSON list)")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus metrics on this port")
    metrics_addr: str = Field("127.0.0.1", description="metrics listen address (0.0.0.0 in a container)")
    check_min_compliance: float = Field(0.99, ge=0, le=1, description="logwarden check's threshold")

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _no_cache(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("internal_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # ValueError naming the bad CIDR
        return value


def _default_cache() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "logwarden"

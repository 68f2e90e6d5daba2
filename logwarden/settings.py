"""The one typed, frozen settings object. Built once at the entry point, never at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from logwarden.timeutil import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Every setting also reads ``LOGWARDEN_<NAME>`` from the environment (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_", env_file=".env",
                                      env_file_encoding="utf-8", extra="forbid", frozen=True)

    rules: list[Path] | None = Field(None, description="rule files, in order; default: the shipped pack")
    standard_profile: Path | None = Field(None, description="logging-standard YAML; default: shipped")
    json_mapping: Path | None = Field(None, description="YAML of extra JSON/logfmt field aliases")
    syslog_year: int | None = Field(None, description="year for RFC 3164 lines; default: inferred")
    allowed_lateness: Duration = Field(timedelta(minutes=5), description="event-time disorder tolerated")
    batch_size: int = Field(1000, ge=1, le=100_000, description="lines per input batch")
    workers: int = Field(1, ge=1, le=64, description="Bytewax worker threads in this process")
    follow_poll: Duration = Field(timedelta(milliseconds=500), description="tail poll interval")
    scorecard_interval: Duration = Field(timedelta(seconds=30),
                                         description="how often a following run writes its scorecard")

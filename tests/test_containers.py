"""The container files, checked without a Docker engine: the compose file against the Compose
Specification (models generated from its JSON schema), the Dockerfile's promises, and the
commands both run, which other tests run outside a container."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from compose_pydantic import ComposeSpecification

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    spec = ComposeSpecification.model_validate(compose())
    assert set(spec.services) == {"redis", "logwarden"}


def test_compose_redis_requires_a_password_and_persists() -> None:
    redis = compose()["services"]["redis"]
    assert "--requirepass" in redis["command"] and "--appendonly" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    flow = compose()["services"]["logwarden"]
    assert flow["environment"]["LOGWARDEN_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD}@redis:")
    assert flow["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_flag_the_compose_file_passes_exists() -> None:
    command = compose()["services"]["logwarden"]["command"]
    help_text = subprocess.run([sys.executable, "-m", "logwarden.cli", command[0], "--help"], capture_output=True,
                               text=True, cwd=ROOT, timeout=60, check=True).stdout
    for flag in (a for a in command if a.startswith("--")):
        assert flag in help_text, flag


def test_dockerfile_promises() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-\w+ AS build$", text, re.M)  # pinned base
    assert re.search(r"^USER logwarden$", text, re.M) and "useradd --system" in text  # non-root
    assert "HEALTHCHECK" in text
    for src in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
    cmd = re.search(r'^CMD \["(\w+)"\]$', text, re.M)
    assert cmd and cmd.group(1) == "demo"  # the README's main job, tested in test_commands


def test_the_schema_check_rejects_what_compose_would() -> None:
    import pytest
    from pydantic import ValidationError

    misspelled = compose()
    misspelled["services"]["logwarden"]["comand"] = ["demo"]
    bad_condition = compose()
    bad_condition["services"]["logwarden"]["depends_on"]["redis"]["condition"] = "whenever"
    for doc in (misspelled, bad_condition):
        with pytest.raises(ValidationError):
            ComposeSpecification.model_validate(doc)

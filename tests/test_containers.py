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

from logwarden.simulate import simulate
from tests.fakes import redis_prefix, redis_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    spec = ComposeSpecification.model_validate(compose())
    assert set(spec.services) == {"redis", "samples", "ship", "logwarden", "redpanda", "kafka-feed",
                                  "logwarden-kafka", "slack", "prometheus", "grafana"}
    monitoring = {name for name, svc in compose()["services"].items() if "monitoring" in svc.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    for svc in monitoring:  # every file the monitoring services mount is in the repository
        for volume in compose()["services"][svc].get("volumes", []):
            if volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).exists(), volume
    kafka = {name for name, svc in compose()["services"].items() if "kafka" in svc.get("profiles", [])}
    assert kafka == {"redpanda", "kafka-feed", "logwarden-kafka"}  # optional: docker compose --profile kafka


def test_compose_flow_reads_the_stream_the_shipper_fills_and_recovers_from_a_volume(tmp_path: Path) -> None:
    services = compose()["services"]
    ship, flow = services["ship"]["command"], services["logwarden"]["command"]
    target = ship[ship.index("--to") + 1]
    assert flow[flow.index("--input") + 1] == target == "redis://redis:6379/0?stream=logs"
    recovery = flow[flow.index("--recovery-dir") + 1]
    volume = next(v for v in services["logwarden"]["volumes"] if v.startswith("logwarden-state:"))
    assert recovery.startswith(volume.split(":")[1] + "/") and "--follow" in flow
    samples = services["samples"]["command"]
    out = samples[samples.index("--out") + 1]
    shipped = {a.removeprefix(out + "/") for a in ship if a.startswith(out + "/")}
    assert shipped == {str(p.relative_to(tmp_path)) for p in simulate(tmp_path, days=1)} - {"labels.jsonl"}
    health = services["logwarden"]["healthcheck"]["test"]
    assert health[1:3] == ["logwarden", "status"] and \
        health[-1].endswith(":" + services["logwarden"]["environment"]["LOGWARDEN_METRICS_PORT"] + "/metrics")


def test_compose_redis_requires_a_password_and_persists() -> None:
    redis = compose()["services"]["redis"]
    assert "--requirepass" in redis["command"] and "--appendonly" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    flow = compose()["services"]["logwarden"]
    assert flow["environment"]["LOGWARDEN_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD}@redis:")
    assert flow["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_flag_the_compose_file_passes_exists() -> None:
    services = compose()["services"]
    for name in ("samples", "ship", "logwarden", "logwarden-kafka", "slack"):
        command = services[name]["command"]
        verb = [a for a in command if not a.startswith("--")][:2 if name == "slack" else 1]
        help_text = subprocess.run([sys.executable, "-m", "logwarden.cli", *verb, "--help"], capture_output=True,
                                   text=True, cwd=ROOT, timeout=60, check=True).stdout
        for flag in (a for a in command if a.startswith("--")):
            assert flag in help_text, (name, flag)


def test_dependencies_are_locked_for_the_image() -> None:
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    lock = {Requirement(line).name.lower().replace("_", "-"): str(Requirement(line).specifier)[2:]
            for line in (ROOT / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["kafka"]]
    for req in needed:
        name = req.name.lower().replace("_", "-")
        assert name in lock and req.specifier.contains(lock[name]), req
        assert version(req.name) == lock[name], (req.name, "CI installs with --constraint requirements.lock")
    assert '--constraint requirements.lock ".[kafka]"' in (ROOT / "Dockerfile").read_text()
    assert "-c requirements.lock" in (ROOT / ".ci" / "run").read_text()


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


def test_the_readme_container_section_matches_the_compose_file() -> None:
    readme = (ROOT / "docs" / "containers.md").read_text()
    section = readme[readme.index("## Run it in containers"):]
    section = section[:section.index("\n## ", 3)]
    services = compose()["services"]
    for name, svc in services.items():
        assert f"| `{name}`" in section, name
        command = svc.get("command")
        if svc.get("build") and command:  # our image: the row names the logwarden command it runs
            assert f"`logwarden {command[0]}" in section, name
        for profile in svc.get("profiles", []):
            assert f"`{name}` (profile `{profile}`)" in section and f"--profile {profile}" in section
    for volume in compose()["volumes"]:
        if volume != "logwarden-kafka-state":
            assert f"`{volume}`" in section, volume
    assert "no image has been built and no container started" in section


def test_the_compose_services_commands_run_outside_a_container(redis_url: str, redis_prefix: str,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """samples -> ship -> logwarden, with the compose file's own commands and environment; only
    hosts, ports and directories are swapped for this machine's (Redis keys under a test prefix)."""
    import os
    import socket
    import time

    import orjson

    services = compose()["services"]
    stream = f"{redis_prefix}logs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def local(arg: str) -> str:
        return (arg.replace("redis://redis:6379/0", redis_url).replace("stream=logs", f"stream={stream}")
                .replace("/samples", str(tmp_path / "samples")).replace("/var/lib/logwarden", str(tmp_path / "state"))
                .replace("9464", str(port)))

    def env_of(name: str) -> dict[str, str]:
        env = {k: local(str(v)) for k, v in services[name].get("environment", {}).items()}
        env.update(LOGWARDEN_REDIS_URL=redis_url, LOGWARDEN_REDIS_PREFIX=redis_prefix,
                   LOGWARDEN_METRICS_ADDR="127.0.0.1")
        return {**os.environ, **env}

    def command(name: str) -> list[str]:
        return [sys.executable, "-m", "logwarden", *map(local, services[name]["command"])]

    for name in ("samples", "ship"):
        done = subprocess.run(command(name), env=env_of(name), cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, (name, done.stderr)
    shipped = sum(int(line.split()[0]) for line in done.stdout.splitlines())
    flow = subprocess.Popen(command("logwarden"), env=env_of("logwarden"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    health = [local(a) for a in services["logwarden"]["healthcheck"]["test"][1:]]
    try:
        for _ in range(300):  # bounded: up to 60 s until the healthcheck passes and every line is read
            check = subprocess.run([sys.executable, "-m", *health], cwd=ROOT, capture_output=True, text=True,
                                   timeout=30, check=False)
            lines = sum(int(row.split()[1]) for row in check.stdout.splitlines() if row.startswith(str(tmp_path)))
            if check.returncode == 0 and lines == shipped:
                break
            time.sleep(0.2)
        assert check.returncode == 0 and lines == shipped > 1000, check.stdout + check.stderr
    finally:
        flow.terminate()
        _, err = flow.communicate(timeout=60)
    started = orjson.loads(err.splitlines()[0])  # LOGWARDEN_LOG_FORMAT=json, as the compose file sets
    assert started["event"] == "flow_started" and started["follow"] is True
    assert started["recovery"] == str(tmp_path / "state" / "recovery")
    assert any((tmp_path / "state" / "recovery").glob("part-*.sqlite3"))

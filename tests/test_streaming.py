"""Redis Streams input, ``ship``, scale-out (1 / 2 workers / 2 processes x 2 workers) and
resuming from Bytewax recovery, all against the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import orjson
import pytest
import redis

from logwarden.errors import ConfigError
from logwarden.parsers import ParserOptions
from logwarden.sources.redis_streams import StreamReader, parse_stream_url, ship
from tests.conftest import sim_inputs
from tests.fakes import redis_prefix, redis_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logwarden", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)


def _records(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines())


def test_stream_urls() -> None:
    url = parse_stream_url("redis://cache:6380/2?stream=logs:*&field=msg", "redis://:s3cret@cache:6380/0")
    assert (url.stream, url.field, url.is_pattern) == ("logs:*", "msg", True)
    assert ":s3cret@" in url.url  # borrowed from LOGWARDEN_REDIS_URL: same host and port
    assert "s3cret" not in url.redacted() and url.redacted() == "redis://:***@cache:6380/2?stream=logs:*&field=msg"
    other = parse_stream_url("redis://elsewhere:6379/0?stream=a", "redis://:s3cret@cache:6380/0")
    assert "s3cret" not in other.url  # never sent to another host
    with pytest.raises(ConfigError, match=r"add \?stream=NAME") as err:
        parse_stream_url("redis://:pw@h:6379/0")
    assert "pw" not in str(err.value)


def test_stream_replay_equals_the_files_and_scales_over_workers_and_processes(
        sim: Path, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    """The same simulated day as files, and shipped into five streams read by 1 worker, 2 workers
    and 2 processes x 2 workers: the very same alerts and violations."""
    target = f"{redis_url}?stream={redis_prefix}logs:*"
    shipped = _cli("ship", "--to", target, *sim_inputs(sim))
    assert shipped.returncode == 0, shipped.stderr
    client = redis.Redis.from_url(redis_url)
    streams = sorted(k.decode() for k in client.scan_iter(f"{redis_prefix}logs:*"))
    assert len(streams) == 6 and sum(client.xlen(s) for s in streams) == sum(
        len(Path(p).read_text().splitlines()) for p in sim_inputs(sim))

    def run(name: str, *args: str) -> tuple[list[bytes], list[bytes]]:
        alerts, violations = tmp_path / f"{name}-a.jsonl", tmp_path / f"{name}-v.jsonl"
        done = _cli("run", *args, "--alerts", str(alerts), "--violations", str(violations),
                    # the rules and the shipped anomaly model, whose warm-up is shortened to fit one day
                    env={"LOGWARDEN_BATCH_SIZE": "97", "LOGWARDEN_MODEL_WARMUP": "1h"})
        assert done.returncode == 0, done.stderr
        return _records(alerts), _records(violations)

    files = run("files", *[a for p in sim_inputs(sim) for a in ("-i", p)])
    one = run("w1", "-i", target)
    assert one == files and len(one[0]) >= 20 and one[1]
    assert any(b'"anomaly.iforest"' in line for line in one[0])
    assert run("w2", "-i", target, "-w", "2") == one
    assert run("p2w2", "-i", target, "-p", "2", "-w", "2") == one


def test_stream_entries_keep_their_source_lines_and_odd_entries_are_quarantined(
        redis_url: str, redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    stream = f"{redis_prefix}mixed"
    ssh = "Nov 24 10:00:0{} gw sshd[1]: Failed password for alice from 192.0.2.7 port 22 ssh2"
    client.xadd(stream, {"line": ssh.format(1), "source": "gw/auth.log", "format": "syslog"})
    client.xadd(stream, {"line": '{"@timestamp":"2026-11-24T10:00:01Z","user":"a","event":"x"}'})
    client.xadd(stream, {"line": ssh.format(2), "source": "gw/auth.log"})
    client.xadd(stream, {"message": "no line field here"})
    reader = StreamReader(client, stream, "line", None, ParserOptions(), 10, follow=False)
    chunks = reader.read()
    assert [(c.source, c.fmt, c.first_line, len(c.lines)) for c in chunks] == [
        ("gw/auth.log", "syslog", 1, 1), (stream, "json", 1, 1),
        ("gw/auth.log", "syslog", 2, 1), (stream, "json", 2, 1)]
    assert chunks[3].lines == ['{"message":"no line field here"}'] and reader.finished and reader.read() == []
    client.xadd(stream, {"line": ssh.format(3), "source": "gw/auth.log"})
    assert reader.read() == []  # a replay ends where the stream ended when it started
    again = StreamReader(client, stream, "line", None, ParserOptions(), 10, follow=True, resume=reader.state)
    assert [(c.source, c.first_line, c.lines) for c in again.read()] == [("gw/auth.log", 3, [ssh.format(3)])]

    violations = tmp_path / "v.jsonl"
    done = _cli("run", "-i", f"{redis_url}?stream={stream}", "--violations", str(violations), "--no-model")
    assert done.returncode == 0, done.stderr
    quarantined = [orjson.loads(line) for line in violations.read_bytes().splitlines()]
    odd = [v for v in quarantined if v["source"] == stream and v["line"] == 2]
    assert odd and odd[0]["action"] == "dropped" and "no line field here" in odd[0]["excerpt"]


def test_ship_follow_sends_what_is_appended(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    import threading
    import time

    log = tmp_path / "web.log"
    line = '192.0.2.1 - - [24/Nov/2026:10:00:00 +0000] "GET /{} HTTP/1.1" 200 5 "-" "curl"\n'
    log.write_text(line.format(0))
    url = parse_stream_url(f"{redis_url}?stream={redis_prefix}ship:*")
    stop = threading.Event()
    sent: dict[str, int] = {}
    worker = threading.Thread(target=lambda: sent.update(ship(url, [str(log)], None, ParserOptions(), follow=True,
                                                             poll=0.05, stop=stop)))
    worker.start()
    client = redis.Redis.from_url(redis_url)
    stream = f"{redis_prefix}ship:web"
    with log.open("a") as f:
        f.write(line.format(1))
        f.write(line.format(2)[:20])  # half a line: sent only once its newline is written
        f.flush()
        for _ in range(200):  # bounded: the two whole lines arrive
            if client.xlen(stream) >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # several polls later, the half line has still not been sent
        assert client.xlen(stream) == 2
        f.write(line.format(2)[20:])
    for _ in range(100):
        if client.xlen(stream) == 3:
            break
        time.sleep(0.05)
    stop.set()
    worker.join(10)
    entries = client.xrange(stream)
    assert [e[1][b"line"].decode() for e in entries] == [line.format(k).rstrip("\n") for k in range(3)]
    assert entries[0][1][b"format"] == b"combined" and entries[0][1][b"source"] == str(log).encode()
    assert sent == {str(log): 3}


def test_a_resumed_run_appends_nothing_twice(sim: Path, redis_url: str, redis_prefix: str,  # noqa: F811
                                             tmp_path: Path) -> None:
    """With --recovery-dir, a second run resumes after the end of the first: its outputs and
    audit trail keep exactly what the first run wrote, and new entries are read once."""
    target = f"{redis_url}?stream={redis_prefix}logs:*"
    assert _cli("ship", "--to", target, *sim_inputs(sim)).returncode == 0
    alerts, violations, recovery = tmp_path / "a.jsonl", tmp_path / "v.jsonl", tmp_path / "recovery"
    env = {"LOGWARDEN_AUDIT_DIR": str(tmp_path / "audit"), "LOGWARDEN_AUDIT_KEY": "k" * 32}
    args = ("run", "-i", target, "--recovery-dir", str(recovery), "--alerts", str(alerts),
            "--violations", str(violations), "--no-model")
    first = _cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    kept = alerts.read_bytes(), violations.read_bytes()
    second = _cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert (alerts.read_bytes(), violations.read_bytes()) == kept and kept[0]
    client = redis.Redis.from_url(redis_url)
    client.xadd(f"{redis_prefix}logs:auth", {"line": "Nov 24 23:59:59 gw sshd[1]: Accepted publickey for bob from "
                                                     "192.0.2.8 port 22 ssh2", "source": "late/auth.log"})
    client.xadd(f"{redis_prefix}logs:auth", {"line": "not a log line at all", "source": "late/auth.log"})
    third = _cli(*args, env=env)
    assert third.returncode == 0, third.stderr
    grown = violations.read_bytes()
    assert grown.startswith(kept[1]) and [orjson.loads(x)["source"] for x in grown[len(kept[1]):].splitlines()] == [
        "late/auth.log"]
    verified = _cli("audit", "verify", str(tmp_path / "audit"), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_ship_merge_sends_history_in_event_time_order(sim: Path, redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    """What the compose file's shipper runs: every file into one stream, oldest event first."""
    from logwarden.parsers import build_parser
    from logwarden.sources import resolve_inputs

    stream = f"{redis_prefix}logs"
    done = _cli("ship", "--to", f"{redis_url}?stream={stream}", "--merge", *sim_inputs(sim))
    assert done.returncode == 0, done.stderr
    entries = redis.Redis.from_url(redis_url).xrange(stream)
    assert len(entries) == sum(len(Path(p).read_text().splitlines()) for p in sim_inputs(sim))
    options = ParserOptions()
    parsers = {p: build_parser(f, options) for p, f in resolve_inputs(sim_inputs(sim), None, options)}
    times = []
    for n, (_, fields) in enumerate(entries):
        try:
            ts = parsers[fields[b"source"].decode()].parse(fields[b"line"].decode(), "-", n).timestamp
            times.append(ts.replace(tzinfo=ts.tzinfo or UTC))
        except Exception:  # a planted malformed line rides along after its neighbour
            continue
    assert len({fields[b"source"] for _, fields in entries}) == 6 and times == sorted(times)
    refused = _cli("ship", "--to", f"{redis_url}?stream={stream}", "--merge", "--follow", sim_inputs(sim)[0])
    assert refused.returncode == 2 and "cannot --follow" in refused.stderr


def test_inputs_from_settings_and_json_logs_describe_the_run(redis_url: str, redis_prefix: str,  # noqa: F811
                                                              tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).xadd(f"{redis_prefix}one", {"msg": '{"@timestamp":"2026-11-24T10:00:00Z"}'})
    violations = tmp_path / "v.jsonl"
    done = _cli("run", "--no-model", "-w", "2", "--violations", str(violations),
                env={"LOGWARDEN_LOG_FORMAT": "json", "LOGWARDEN_STREAM_FIELD": "msg",
                     "LOGWARDEN_INPUTS": orjson.dumps([f"{redis_url}?stream={redis_prefix}one"]).decode()})
    assert done.returncode == 0, done.stderr
    [v] = [orjson.loads(line) for line in violations.read_bytes().splitlines()]
    assert v["reason"] == "missing_field" and v["line"] == 1  # the line came from the field "msg"
    logs = [orjson.loads(line) for line in done.stderr.splitlines()]  # every stderr line is one JSON object
    started = next(entry for entry in logs if entry["event"] == "flow_started")
    assert started["inputs"] == [{"stream": f"{redis_url}?stream={redis_prefix}one&field=msg"}]
    assert started["workers"] == 2
    assert started["level"] == "info" and started["timestamp"].endswith("Z")
    [stopped] = [entry for entry in logs if entry["event"] == "flow_stopped"]
    assert stopped["lines"] == 1 and stopped["lines_per_second"] > 0  # what it read, how fast


def test_a_redis_restart_mid_stream_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Our own redis-server (the shared one must not be restarted): the follower keeps its place
    while Redis is down, logs it, and goes on where it was once Redis is back."""
    import shutil
    import time

    from tests.fakes import _free_port

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = _free_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                                 "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis(port=port).ping()
                return proc
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    server = start()
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        for k in range(5):
            client.xadd("s", {"line": f'{{"@timestamp":"2026-11-24T10:00:0{k}Z","n":{k}}}', "format": "json"})
        reader = StreamReader(redis.Redis(port=port, socket_timeout=2), "s", "line", None, ParserOptions(), 2,
                              follow=True)
        assert [c.lines for c in reader.read()] == [[f'{{"@timestamp":"2026-11-24T10:00:0{k}Z","n":{k}}}'
                                                     for k in (0, 1)]]
        client.save()
        client.shutdown(nosave=True)
        server.wait(timeout=10)
        assert reader.read() == [] and reader.read() == []  # down: no error, same place
        server = start()  # back, with the saved stream
        got = [c for _ in range(3) for c in reader.read()]
        assert [(c.first_line, len(c.lines)) for c in got] == [(3, 2), (5, 1)]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_killing_a_local_cluster_leaves_no_orphan(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "-i", f"{redis_url}?stream={redis_prefix}x",
                             "--follow", "-p", "2", "--no-model"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    children: list[int] = []
    for _ in range(100):  # both processes of the cluster are up
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                   text=True, check=False).stdout.split()]
        if len(children) == 2:
            break
        time.sleep(0.1)
    assert len(children) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for _ in range(100):
        alive = [c for c in children if Path(f"/proc/{c}").exists()
                 and "zombie" not in Path(f"/proc/{c}/status").read_text().lower()]
        if not alive:
            break
        time.sleep(0.1)
    assert alive == []

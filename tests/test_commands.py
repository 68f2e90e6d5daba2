"""The commands the README and the container files run, run here outside a container."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_without_redis_or_slack(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "ALERT" in proc.stdout and "compliant" in proc.stdout
    alerts = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert {"203.0.113.50", "198.51.100.77", "192.0.2.200"} <= {a["entity"] for a in alerts}
    assert (tmp_path / "violations.jsonl").stat().st_size > 0


def test_follow_tails_a_growing_file_and_alerts(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Nov 24 09:00:00 h sshd[1]: Accepted publickey for alice from 10.0.0.1 port 2 ssh2\n")
    out = tmp_path / "alerts.jsonl"
    card = tmp_path / "card.json"
    env = {**os.environ, "LOGWARDEN_ALLOWED_LATENESS": "1s", "LOGWARDEN_FOLLOW_POLL": "100ms",
           "LOGWARDEN_SCORECARD_INTERVAL": "1s"}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log), "--follow",
                             "--alerts", str(out), "--scorecard", str(card)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        with log.open("a") as f:
            for k in range(12):
                f.write(f"Nov 24 10:00:{k:02d} h sshd[2]: Failed password for alice from "
                        f"192.0.2.7 port {k} ssh2\n")
        records: list[dict] = []
        for _ in range(300):  # bounded wait: up to 30 s
            if out.exists() and out.stat().st_size:
                records = [orjson.loads(x) for x in out.read_text().splitlines()]
                if records:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert records and records[0]["entity"] == "192.0.2.7" and records[0]["count"] >= 10
        for _ in range(100):  # the running flow's scorecard, on demand
            if card.exists() and orjson.loads(card.read_bytes())[0]["lines"] == 13:
                break
            time.sleep(0.1)
        shown = subprocess.run([sys.executable, "-m", "logwarden.cli", "scorecard", str(card)], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=False)
        assert shown.returncode == 0 and "      13 " in shown.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_help_is_the_container_healthcheck() -> None:
    proc = subprocess.run([sys.executable, "-m", "logwarden.cli", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 0 and "run" in proc.stdout and "demo" in proc.stdout


def test_status_reads_a_running_flows_metrics(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "api.jsonl"
    log.write_text("")
    env = {**os.environ, "LOGWARDEN_METRICS_PORT": str(port), "LOGWARDEN_SCORECARD_INTERVAL": "1s",
           "LOGWARDEN_FOLLOW_POLL": "100ms"}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden.cli", "run", "-i", str(log), "--format", "json",
                             "--follow", "--recovery-dir", str(tmp_path / "recovery")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = [orjson.dumps({"@timestamp": f"2026-11-25T10:00:{k:02d}Z", "user": "a", "action": "read",
                               "outcome": "success"}).decode() for k in range(9)]
        lines.append('{"@timestamp": "2026-11-25T10:01:00Z", "action": "read"}')  # missing who/outcome
        time.sleep(1.5)
        log.write_text("\n".join(lines) + "\n")
        shown = ""
        for _ in range(100):  # bounded: up to 20 s
            status = subprocess.run([sys.executable, "-m", "logwarden.cli", "status", "--url",
                                     f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True,
                                    cwd=ROOT, timeout=30, check=False)
            shown = status.stdout
            if status.returncode == 0 and "missing_field=1" in shown and "      10 " in shown and "rules=" in shown:
                break
            time.sleep(0.2)
        assert str(log) in shown and "      10        9" in shown and "90.0%" in shown, shown
        assert "missing_field=1" in shown and "outbox: 0 waiting" in shown
        # its watermark: 1s behind its newest event (in order so far), within JSON's 5s allowed lateness
        assert re.search(rf"^{re.escape(str(log))} .* 1s/5s$", shown, re.M), shown
        # the shipped model is portable: it learns this organisation before it judges anyone
        assert re.search(r"^model: \d+ principals scored, \d+ learning; warm-up: 24\.0h of event time left", shown,
                         re.M), shown
        # the group keys of user "a" hold state (buffered within the allowed lateness); the recovery
        # database is on disk
        assert re.search(r"^state: .*rules=[1-9]\d* keys; recovery database \d+\.\d MB$", shown, re.M), shown
    finally:
        proc.kill()
        proc.wait(timeout=10)
    gone = subprocess.run([sys.executable, "-m", "logwarden.cli", "status", "--url", f"http://127.0.0.1:{port}/metrics"],
                          capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)
    assert gone.returncode == 2 and "no metrics at" in gone.stderr


def test_directory_input_survives_rotations_without_losing_or_repeating_lines(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "violations.jsonl"
    env = {**os.environ, "LOGWARDEN_FOLLOW_POLL": "100ms", "LOGWARDEN_MODEL_ENABLED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "logwarden.cli", "run", "-i", str(logs / "*.log"), "--format",
                             "json", "--follow", "--violations", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    counter = iter(range(10_000))

    def write(path: Path, n: int) -> None:  # each line a violation (no outcome): one record per line
        with path.open("a") as f:
            for _ in range(n):
                f.write(orjson.dumps({"@timestamp": "2026-11-25T10:00:00Z", "user": "a", "action": "read",
                                      "seq": next(counter)}).decode() + "\n")

    def seen() -> list[int]:
        if not out.exists():
            return []
        records = map(orjson.loads, out.read_text().splitlines())
        return [int(v["excerpt"].split('"seq":')[1].rstrip("}")) for v in records]

    def settle(expected: int) -> None:
        for _ in range(150):  # bounded: up to 30 s
            if len(seen()) >= expected:
                return
            time.sleep(0.2)

    try:
        app = logs / "app.log"
        write(app, 50)
        settle(50)
        write(app, 20)  # written just before rotation: must not be lost
        app.rename(logs / "app.log.1")  # rename + create rotation (app.log.1 no longer matches)
        write(app, 30)
        write(logs / "other.log", 10)  # a file created later
        settle(110)
        copy = logs / "app.log.2"
        copy.write_bytes(app.read_bytes())  # copytruncate rotation
        with app.open("r+") as f:
            f.truncate(0)
        write(app, 15)
        settle(125)
        time.sleep(1)  # a little longer: nothing more may appear
        got = seen()
        assert sorted(got) == list(range(125)), (len(got), sorted(set(range(125)) - set(got))[:10])
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_directory_watcher_state_resumes_after_a_restart(tmp_path: Path) -> None:
    import pickle

    from logwarden.parsers import ParserOptions
    from logwarden.sources.watch import DirectoryWatcher

    log = tmp_path / "a.log"
    log.write_text("".join(f'{{"n": {k}}}\n' for k in range(5)))
    first = DirectoryWatcher(str(tmp_path / "*.log"), "json", ParserOptions())
    assert [c.lines for c in first.poll()] == [[f'{{"n": {k}}}' for k in range(5)]]
    state = pickle.loads(pickle.dumps(first.state))
    first.close()
    with log.open("a") as f:
        f.write('{"n": 5}\n{"n": 6')  # the last line is still being written
    again = DirectoryWatcher(str(tmp_path / "*.log"), "json", ParserOptions(), state=state)
    [chunk] = again.poll()
    assert chunk.lines == ['{"n": 5}'] and chunk.first_line == 6
    with log.open("a") as f:
        f.write("}\n")
    [chunk] = again.poll()
    assert chunk.lines == ['{"n": 6}'] and chunk.first_line == 7
    again.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logwarden", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=os.environ | (env or {}), check=False)


@pytest.mark.parametrize(("args", "env", "says"), [
    (["run", "--input", "/no/such/access.log"], {}, "input /no/such/access.log: no such file"),
    (["run", "--input", "x.log"], {"LOGWARDEN_MAX_LINE": "lots"}, "invalid settings: max_line"),
    (["incidents", "list"], {"LOGWARDEN_REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis"),
])
def test_an_expected_failure_is_one_line_and_debug_adds_the_traceback(args: list[str], env: dict[str, str],
                                                                      says: str) -> None:
    """#14: a bad file, a bad setting, Redis out of reach: one line naming it, exit 2, no
    traceback; ``--debug`` shows the traceback too."""
    plain = _cli(*args, env=env)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, plain.stderr
    [line] = [x for x in plain.stderr.splitlines() if x.startswith("logwarden: error: ")]
    assert says in line and line.endswith("(--debug shows the traceback)")
    debug = _cli("--debug", *args, env=env)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr and says in debug.stderr

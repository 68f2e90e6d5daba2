"""``logwarden run`` end to end (every format, the default rule pack and model), beside a plain
``json.loads`` loop and logwarden's own per-event path, in the same run; with its peak memory.

    python benchmarks/bench_flow.py [--days 14] [--orgs 1] [--runs 3]
    python benchmarks/bench_flow.py --memory        # peak RSS over about 1M and 4M lines (48, 192 days)
    python benchmarks/bench_flow.py --real 20       # the real logs of ../shared/data/real instead
    python benchmarks/bench_flow.py --logs DIR ...   # any logs (files, or every file under a folder)
    python benchmarks/bench_flow.py --instructions --days 3   # instructions (valgrind), not seconds
    python benchmarks/bench_flow.py --audit         # with the audit trail (every event, encrypted)

``--real N``: logs we did not write, where they are beside the checkout: the Apache access log
(10,000 lines) N times over, the OpenSSH and Linux syslog samples and the CloudTrail record file.
``--logs``: an organisation's own logs, each file's format detected as ``logwarden run`` does.

Input: ``logwarden simulate`` (web, API JSON, sshd/sudo, Kubernetes audit, CloudTrail, database
gateway), ``--days`` of each of ``--orgs`` organisations, written to a temporary directory.

Figures, each in lines per second over all the input's lines:
- ``json.loads``: the standard library decoding the JSON lines alone (a floor for any parser);
- per-event reference: ``tests/reference.py``, the straightforward per-event design the flow is
  tested equal to (every line through the standard's full path, the rules over one time-ordered
  list of events, the model's windows fed one event at a time; no Bytewax);
- ``logwarden run``: the real command, one worker, with its start-up (measured on an empty
  input) subtracted; and its peak resident memory (RSS) from the kernel. It runs ``--runs``
  times: the figure is the median run, with the range of all (a shared machine's speed drifts
  by 10-20% from one run to the next);
- the flow's own clock: the ``lines_per_second`` of its ``flow_stopped`` record, which starts
  once the flow is built (after the start-up), the median of the same runs.

``--audit``: every run (and the start-up's) also writes the audit trail, both classes (every
event and every decision), encrypted, as a deployment with ``LOGWARDEN_AUDIT_DIR`` does.

``--instructions``: no timing; the instructions ``logwarden run`` executes (valgrind's callgrind),
less those of a run over one line (the start-up). The same count run after run, whatever the
machine is doing: the measure for comparing two versions on a shared VM. About 50x slower than
the run itself (``--days 3``: about three minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
sys.path.insert(0, str(ROOT))  # tests.reference
ORGS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")


def simulate_input(work: Path, days: int, orgs: int) -> list[str]:
    from logwarden.simulate import simulate

    end = datetime(2026, 11, 25, tzinfo=UTC)
    for org in ORGS[:orgs]:
        simulate(work / org, days=days, seed=11, end=end, org=org)
    return sorted(str(p) for p in work.rglob("*.*") if p.name != "labels.jsonl")


def real_input(work: Path, copies: int) -> list[str]:
    """The real logs: the Apache access log ``copies`` times over (its four days again and again:
    the lines are real, their order a replay's), the syslog samples and the CloudTrail file."""
    if not REAL.is_dir():
        raise SystemExit(f"--real: no real logs at {REAL}")
    web = work / "apache.log"
    text = (REAL / "web" / "apache_access_2015.log").read_bytes()
    web.write_bytes(text * copies)
    return [str(web), str(REAL / "ssh" / "OpenSSH_2k.log"), str(REAL / "ssh" / "Linux_2k.log"),
            *map(str, sorted((REAL / "cloudtrail").glob("*.json")))]


def given_input(paths: list[str]) -> list[str]:
    """``--logs``: these files, and every file under these folders whose format is detected (the
    others, a licence or a README beside the logs, are named and left out)."""
    from logwarden.errors import ConfigError
    from logwarden.parsers import ParserOptions
    from logwarden.sources import sniff_file

    found: list[str] = []
    for given in map(Path, paths):
        if given.is_file():
            found.append(str(given))
            continue
        if not given.is_dir():
            raise SystemExit(f"--logs: no such file or folder: {given}")
        for path in sorted(p for p in given.rglob("*") if p.is_file()):
            try:
                sniff_file(str(path), ParserOptions())
            except ConfigError:
                print(f"--logs: left out {path} (not a log format logwarden reads)")
                continue
            found.append(str(path))
    if not found:
        raise SystemExit("--logs: no log files")
    return found


def chosen_input(work: Path, days: int, orgs: int, real: int | None, logs: list[str] | None) -> tuple[list[str], int]:
    """The input asked for (``--logs``, ``--real`` or the simulator's) and its line count."""
    paths = given_input(logs) if logs else real_input(work, real) if real else \
        simulate_input(work / "logs", days, orgs)
    return paths, count_lines(paths)


def count_lines(paths: list[str]) -> int:
    return sum(sum(1 for _ in open(p, encoding="utf-8", errors="replace")) for p in paths)


def json_loop(paths: list[str]) -> tuple[float, int]:
    t, n = time.perf_counter(), 0
    for path in paths:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    n += 1
                    try:
                        json.loads(line)
                    except ValueError:  # the simulator plants malformed lines
                        pass
    return time.perf_counter() - t, n


def per_event(paths: list[str]) -> tuple[float, int]:
    """The per-event reference of the equivalence test (``tests/reference.py``): every line
    through the standard's full path, the rules over one time-ordered list, the model's windows
    fed one event at a time; no Bytewax."""
    from logwarden.anomaly.model import AnomalyModel
    from logwarden.app import default_model_path
    from logwarden.parsers import ParserOptions
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.sources import resolve_inputs
    from logwarden.standard import load_profile
    from tests.reference import replay

    model_path = default_model_path()
    model = AnomalyModel.load(model_path) if model_path is not None else None
    rules, options, profile = load_rules(default_rule_files()).enabled(), ParserOptions(), load_profile()
    t = time.perf_counter()
    out = replay(resolve_inputs(paths, None, options), profile, rules, model, 1000, options)
    return time.perf_counter() - t, len(out.alerts)


# Linux keeps a process's peak RSS across exec, so a child forked from this (large) process
# would report this one's peak: a small Python forks the run and reports the run's own.
_PEAK = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execvp(sys.argv[1], sys.argv[1:])\n"
         "_, status, usage = os.wait4(pid, 0)\nprint(usage.ru_maxrss, file=sys.stderr)\n"
         "sys.exit(os.waitstatus_to_exitcode(status))")


def environment(work: Path, audit: bool) -> dict[str, str]:
    """A run's environment: with ``audit``, a fresh trail of both classes, encrypted."""
    if not audit:
        return dict(os.environ)
    shutil.rmtree(work / "audit", ignore_errors=True)
    return {**os.environ, "LOGWARDEN_AUDIT_DIR": str(work / "audit"),
            "LOGWARDEN_AUDIT_KEY": "bench-flow-chain-key-0123456789", "LOGWARDEN_AUDIT_ENCRYPTION_KEY": "ab" * 32}


def run_logwarden(paths: list[str], work: Path, audit: bool = False) -> tuple[float, int, int, float]:
    """(seconds, peak RSS in KiB, alert lines, the flow's own lines/s) of ``logwarden run``
    over ``paths``."""
    cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "logwarden", "run",
           "--alerts", str(work / "alerts.jsonl"), "--violations", str(work / "violations.jsonl")]
    for path in paths:
        cmd += ["--input", path]
    env = environment(work, audit)
    with open(work / "stderr.log", "wb") as err:
        t = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
        seconds = time.perf_counter() - t
    log = (work / "stderr.log").read_text()
    if code != 0:
        raise SystemExit(f"logwarden run failed:\n{log[-2000:]}")
    rss = int(log.rstrip().rsplit("\n", 1)[-1])
    found = work / "alerts.jsonl"
    alerts = sum(1 for _ in open(found)) if found.exists() else 0
    clock = re.search(r"flow_stopped.*?lines_per_second=(\d+)", log)
    return seconds, rss, alerts, float(clock[1]) if clock else 0.0


def one_line(work: Path) -> Path:
    """An input of one line, in a folder of its own: a run over it is the start-up."""
    empty = work / "empty" / "access.log"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text('127.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8"\n')
    return empty


def startup(work: Path, audit: bool = False) -> float:
    empty = one_line(work)
    return min(run_logwarden([str(empty)], empty.parent, audit)[0] for _ in range(2))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def throughput(days: int, orgs: int, real: int | None = None, runs: int = 3, logs: list[str] | None = None,
               audit: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="lw-bench-flow-") as tmp:
        work = Path(tmp)
        paths, lines = chosen_input(work, days, orgs, real, logs)
        print(f"{lines:,} lines in {len(paths)} files; {machine()}{'; audit trail on' if audit else ''}")
        loads, json_lines = json_loop(paths)
        each, each_alerts = per_event(paths)
        base = startup(work, audit)
        done = sorted(run_logwarden(paths, work, audit) for _ in range(runs))
        flow, rss, flow_alerts, _ = done[len(done) // 2]
        fastest, slowest = lines / (done[0][0] - base), lines / (done[-1][0] - base)
        clocks = sorted(run[3] for run in done)
        print(f"{'what':<34}{'seconds':>9}{'lines/s':>11}")
        if json_lines:
            print(f"{f'json.loads ({json_lines:,} JSON lines)':<34}{loads:>9.2f}{json_lines / loads:>11,.0f}")
        print(f"{'per-event reference (with model)':<34}{each:>9.2f}{lines / each:>11,.0f}")
        print(f"{'logwarden run (1 worker)':<34}{flow - base:>9.2f}{lines / (flow - base):>11,.0f}"
              f"   (start-up {base:.1f} s excluded; median of {runs}: {slowest:,.0f}-{fastest:,.0f}; "
              f"peak RSS {rss / 1024:,.0f} MiB)")
        print(f"{'logwarden run, start-up included':<34}{flow:>9.2f}{lines / flow:>11,.0f}")
        print(f"{'the flow by its own clock':<34}{'':>9}{clocks[len(clocks) // 2]:>11,.0f}"
              f"   ({clocks[0]:,.0f}-{clocks[-1]:,.0f})")
        print(f"alerts (the standard's, the rules' and the model's, every revision): per-event reference "
              f"{each_alerts}, logwarden run {flow_alerts}")


def count_instructions(paths: list[str], work: Path, audit: bool = False) -> tuple[int, int]:
    """(instructions, alert lines) of ``logwarden run`` over ``paths``, counted by valgrind's
    callgrind: the same count run after run whatever else the machine does (a shared VM's
    speed drifts by 20%), so two versions compare to a fraction of a percent."""
    out = work / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "logwarden", "run",
           "--alerts", str(work / "alerts.jsonl"), "--violations", str(work / "violations.jsonl")]
    for path in paths:
        cmd += ["--input", path]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=environment(work, audit))
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"logwarden run under callgrind failed:\n{done.stderr[-2000:]}")
    alerts = work / "alerts.jsonl"
    out.unlink(missing_ok=True)
    return int(found[1]), sum(1 for _ in open(alerts)) if alerts.exists() else 0


def instructions(days: int, orgs: int, real: int | None = None, logs: list[str] | None = None,
                 audit: bool = False) -> None:
    """The flow's instructions (the run's, less an empty run's start-up), per line."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="lw-bench-ir-") as tmp:
        work = Path(tmp)
        paths, lines = chosen_input(work, days, orgs, real, logs)
        print(f"{lines:,} lines in {len(paths)} files; {machine()}; counting instructions (slow: ~50x)")
        empty = one_line(work)
        base, _ = count_instructions([str(empty)], empty.parent, audit)
        total, alerts = count_instructions(paths, work, audit)
        flow = total - base
        print(f"start-up {base / 1e9:.3f} G instructions; run {total / 1e9:.3f} G; "
              f"the flow {flow / 1e9:.3f} G, {flow / lines:,.0f} a line; {alerts} alert lines")


def memory() -> None:
    """Peak RSS against input length: the state is bounded, so 4x the lines must not be 4x the
    memory. One organisation over 48 days, then over 192: the same principals, keys and
    formats, four times as long (four organisations would also be four times the state)."""
    for days, orgs in ((48, 1), (192, 1)):
        with tempfile.TemporaryDirectory(prefix="lw-bench-mem-") as tmp:
            work = Path(tmp)
            paths = simulate_input(work / "logs", days, orgs)
            lines = count_lines(paths)
            seconds, rss, _, _ = run_logwarden(paths, work)
            print(f"{lines:>10,} lines: {seconds:7.1f} s, peak RSS {rss / 1024:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--orgs", type=int, default=1, choices=range(1, len(ORGS) + 1))
    ap.add_argument("--memory", action="store_true", help="peak RSS over about 1M and 4M lines")
    ap.add_argument("--real", type=int, metavar="N", help="the real logs (the Apache log N times over) instead")
    ap.add_argument("--logs", nargs="+", metavar="PATH", help="these logs (files or folders) instead")
    ap.add_argument("--runs", type=int, default=3, help="runs of logwarden run; the median is given (default 3)")
    ap.add_argument("--instructions", action="store_true",
                    help="count the flow's instructions with valgrind instead of timing it (repeatable)")
    ap.add_argument("--audit", action="store_true", help="runs write the audit trail (every event, encrypted)")
    args = ap.parse_args()
    if args.memory:
        memory()
    elif args.instructions:
        instructions(args.days, args.orgs, args.real, args.logs, args.audit)
    else:
        throughput(args.days, args.orgs, args.real, args.runs, args.logs, args.audit)


if __name__ == "__main__":
    main()

"""The whole flow (parse, standard, the default rule pack, alert output) beside a plain-Python
loop of the same parsers, checks and rules, in the same run, on one core.

Input: mixed access logs (web combined, API JSON lines, sshd syslog) from tens of thousands of
distinct principals, with a few brute-force bursts so rules fire.

    python benchmarks/bench_rules.py [--events 300000] [--principals 30000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson


def generate(work: Path, events: int, principals: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
    ips = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(principals)]
    users = [f"user{i}" for i in range(principals)]
    per = events // 3
    web, api, auth = [], [], []
    for k in range(per):
        ts = t0 + timedelta(milliseconds=k * 40)
        ip = rng.choice(ips)
        status = 404 if rng.random() < 0.02 else 200
        web.append(f'{ip} - - [{ts.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET /p/{k % 500} HTTP/1.1" '
                   f'{status} {rng.randint(100, 9000)} "-" "Mozilla/5.0"')
        api.append(orjson.dumps({"@timestamp": ts.isoformat(), "user": rng.choice(users), "src_ip": ip,
                                 "action": "read", "outcome": "success", "path": "/api/v1/items",
                                 "bytes": rng.randint(10, 5000)}).decode())
        failed = rng.random() < 0.3 or (k % 5000) < 15  # background noise plus bursts
        attacker = ips[k // 5000] if (k % 5000) < 15 else ip
        auth.append(f"{ts.strftime('%b %d %H:%M:%S')} bastion sshd[{k % 9999}]: "
                    + (f"Failed password for alice from {attacker} port 22 ssh2" if failed
                       else f"Accepted publickey for {rng.choice(users)} from {ip} port 22 ssh2"))
    out = []
    for name, fmt, lines in (("web.log", "combined", web), ("api.jsonl", "json", api), ("auth.log", "syslog", auth)):
        path = work / name
        path.write_text("\n".join(lines) + "\n")
        out.append((str(path), fmt))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--principals", type=int, default=30_000)
    args = ap.parse_args()

    from bytewax.testing import run_main

    from flows.main import FlowConfig, Sinks, build_flow
    from logwarden.event import Event
    from logwarden.parsers import ParserOptions, build_parser
    from logwarden.rules.evaluate import evaluate
    from logwarden.rules.loader import default_rule_files, load_rules
    from logwarden.sinks import JsonLinesSink
    from logwarden.sources import LineReader
    from logwarden.sources.bytewax.files import LogFileSource
    from logwarden.standard import SourceChecker, load_profile

    work = Path(tempfile.mkdtemp(prefix="lw-bench-rules-"))
    inputs = generate(work, args.events, args.principals)
    total = sum(1 for path, _ in inputs for _ in open(path))
    rules = load_rules(default_rule_files()).enabled()
    profile, options = load_profile(), ParserOptions(syslog_year=2026)

    t = time.perf_counter()
    events: list[Event] = []
    for path, fmt in inputs:
        checker = SourceChecker(profile, build_parser(fmt, options), path)
        for chunk in LineReader(path, fmt, 1000).chunks():
            events.extend(x for x in checker.check_lines(chunk.lines, chunk.first_line) if type(x) is Event)
    plain_alerts = evaluate(rules, events)
    plain = time.perf_counter() - t

    config = FlowConfig(profile=profile, parser_options=options, rules=rules)
    out = work / "alerts.jsonl"
    t = time.perf_counter()
    run_main(build_flow(config, LogFileSource(inputs, 1000),
                        Sinks(alerts=[JsonLinesSink(out)], violations=[JsonLinesSink(work / "v.jsonl")],
                              scorecards=[])))
    flow = time.perf_counter() - t
    flow_alerts = {orjson.loads(x)["alert_id"] for x in out.read_text().splitlines()}
    print(f"{total:,} lines, {args.principals:,} principals, {len(rules)} rules, "
          f"{len({a.alert_id for a in plain_alerts})} alerts (flow: {len(flow_alerts)})")
    print(f"plain-Python loop (parse, standard, same rules)   {total / plain:>10,.0f} events/s")
    print(f"Bytewax flow, 1 worker (same work + outputs)      {total / flow:>10,.0f} events/s")


if __name__ == "__main__":
    main()

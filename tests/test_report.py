"""#16 `logwarden report`: a simulated week through the real flow (audit trail, incidents in Redis,
a compliance scope), two incidents acknowledged and one resolved by the CLI, then the report
opened in headless Chromium (Debian's package, driven by Playwright): no console error, no
network request, every section with its charts drawn, and a PDF of the expected length."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml

from logwarden.report.data import framework_of
from tests.fakes import redis_prefix, redis_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
KEY = "report-test-chain-key-0123456789"
SECTIONS = ["summary", "compliance", "violations", "alerts", "response", "coverage", "model", "trail"]
CHARTS = ["Compliance per source and day", "Compliance per scope and day", "Violations by reason",
          "Alerts by rule and severity", "Incidents by severity and state",
          "Median time to acknowledge and to resolve", "Controls covered by the rules in force",
          "Busiest day per detector: new incidents"]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """Debian's Chromium (installed here when missing and we may: the test needs a real browser)."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("this test needs Chromium: apt-get install chromium (Debian's package)")
    return found


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "logwarden", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_control_tags_map_to_their_frameworks() -> None:
    assert framework_of("pci-dss-4.0:10.2.1.4") == ("PCI DSS 4.0", "10.2.1.4")
    assert framework_of("nist-800-53:AC-7") == ("NIST 800-53", "AC-7")
    assert framework_of("attack:T1110.001") == ("ATT&CK", "T1110.001")
    assert framework_of("attack.t1078") == ("ATT&CK", "T1078")  # Sigma's spelling
    assert framework_of("cve.2021-44228") is None and framework_of("owner:platform") is None


def test_scorecards_count_records_per_day_of_the_source_and_scope(tmp_path: Path) -> None:
    """The report's compliance over time: a scorecard's days (and its scopes' days) add up to its
    records, each on the UTC day of the source's own time, and survive a snapshot."""
    from logwarden.parsers import ParserOptions, build_parser
    from logwarden.simulate import simulate
    from logwarden.standard import SourceChecker, load_profile

    simulate(tmp_path / "sim", days=3, seed=5, end=datetime(2026, 11, 20, tzinfo=UTC))
    doc = yaml.safe_load((ROOT / "logwarden" / "data" / "standard-default.yaml").read_text())
    doc["scopes"] = {"cardholder-data": {"resources": ["payments", "invoices"]}}
    (tmp_path / "standard.yaml").write_text(yaml.safe_dump(doc))
    profile = load_profile(tmp_path / "standard.yaml")
    path = tmp_path / "sim" / "db" / "queries.jsonl"
    lines = path.read_text().splitlines()
    checker = SourceChecker(profile, build_parser("json", ParserOptions()), str(path))
    half = len(lines) // 2
    list(checker.check_lines(lines[:half], 1))
    resumed = SourceChecker(profile, build_parser("json", ParserOptions()), str(path))
    resumed.restore(checker.snapshot())
    list(resumed.check_lines(lines[half:], half + 1))
    card = resumed.scorecard
    assert sorted(card.days) == ["2026-11-17", "2026-11-18", "2026-11-19"]
    assert sum(n for n, _ in card.days.values()) == card.lines - card.blank + card.items
    assert sum(ok for _, ok in card.days.values()) == card.compliant
    chd = card.scope_days["cardholder-data"]
    assert sum(n for n, _ in chd.values()) == card.scopes["cardholder-data"][0] > 0
    assert card.to_dict()["days"] == {d: list(v) for d, v in sorted(card.days.items())}


def test_a_simulated_week_reports_every_section_in_a_real_browser(tmp_path: Path, redis_url: str,  # noqa: F811
                                                                   redis_prefix: str) -> None:  # noqa: F811
    chromium = _chromium()
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader

    from logwarden.simulate import simulate

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sim = tmp_path / "sim"
    simulate(sim, days=7, seed=11, end=end)
    profile = yaml.safe_load((ROOT / "logwarden" / "data" / "standard-default.yaml").read_text())
    profile["scopes"] = {"cardholder-data": {"resources": ["payments", "invoices"]},
                         "platform": {"sources": ["*/k8s/*"]}}
    (tmp_path / "standard.yaml").write_text(yaml.safe_dump(profile))
    env = {**os.environ, "LOGWARDEN_AUDIT_DIR": str(tmp_path / "audit"), "LOGWARDEN_AUDIT_KEY": KEY,
           "LOGWARDEN_AUDIT_FSYNC": "never", "LOGWARDEN_REDIS_URL": redis_url, "LOGWARDEN_REDIS_PREFIX": redis_prefix,
           "LOGWARDEN_STANDARD_PROFILE": str(tmp_path / "standard.yaml"), "LOGWARDEN_LOG_FORMAT": "json"}
    inputs = [a for p in sorted(sim.rglob("*.*")) if p.name != "labels.jsonl" for a in ("-i", str(p))]
    _cli(env, "run", *inputs, "--alerts", str(tmp_path / "alerts.jsonl"))
    listed = _cli(env, "incidents", "list", "--state", "open", "--json")
    incidents = [orjson.loads(line) for line in listed.splitlines()]
    assert len(incidents) >= 5
    for inc in incidents[:2]:
        _cli(env, "incidents", "ack", inc["id"], "--by", "alice", "--note", "looking")
    _cli(env, "incidents", "resolve", incidents[0]["id"], "--by", "alice", "--note", "fixed")

    start, stop = end - timedelta(days=7), end + timedelta(days=1)
    out = tmp_path / "report.html"
    said = _cli(env, "report", "--from", start.isoformat(), "--to", stop.isoformat(), "--out", str(out))
    assert "trail verified" in said
    html = out.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)  # nothing to fetch

    console: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(out.as_uri())
        found = page.evaluate("""() => Array.from(document.querySelectorAll('section')).map(s => s.id)""")
        charts = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('svg.chart')).map(
            s => [s.getAttribute('aria-label'), {marks: s.querySelectorAll('path, rect, use').length,
                                                   width: s.getBoundingClientRect().width,
                                                   height: s.getBoundingClientRect().height}]))""")
        text = page.inner_text("body")
        pdf = tmp_path / "report.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        browser.close()
    assert console == []
    assert requests == [out.as_uri()]  # the page itself, nothing else
    assert found == SECTIONS
    assert sorted(charts) == sorted(CHARTS)
    for title, chart in charts.items():  # drawn: axes, ticks and the data's own marks, at a real size
        assert chart["marks"] > 10 and chart["width"] > 300 and chart["height"] > 100, (title, chart)
    assert "cardholder-data" in text and "platform" in text
    assert "alice" in text and "Every chain verifies." in text
    assert "ATT&CK" in text and "PCI DSS 4.0" in text and "NIST 800-53" in text
    # the summary and compliance share the first page, every other section starts one; the longest
    # (the incident and coverage tables) run onto a second
    pages = len(PdfReader(pdf).pages)
    assert len(SECTIONS) - 1 <= pages <= len(SECTIONS) + 3, pages

    # a scope alone: its compliance and its violations only
    scoped = tmp_path / "chd.html"
    _cli(env, "report", "--from", start.isoformat(), "--to", stop.isoformat(), "--scope", "cardholder-data",
         "--out", str(scoped))
    chd = scoped.read_text()
    assert "compliance scope\n    <b>cardholder-data</b>" in chd or "<b>cardholder-data</b>" in chd
    assert "Compliance per scope and day" in chd and "k8s/audit.jsonl" not in chd.split('id="violations"')[0]

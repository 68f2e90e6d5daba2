"""#16: the Grafana dashboard's every query returns data from a real Prometheus (the Debian
package) scraping a running ``logwarden run --follow`` on simulated data, with Redis incidents,
Slack (the local Web API server), the model and a compliance scope: no panel left empty by a
misspelt metric."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.fakes import TOKEN, FakeSlack, _free_port, redis_prefix, redis_url, slack  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "logwarden.json"


def _prometheus() -> str:
    """The Prometheus binary; on a Debian machine without it, its package is installed."""
    found = shutil.which("prometheus")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "prometheus"], check=False, capture_output=True,
                       timeout=600)
        found = shutil.which("prometheus")
    if found is None:
        pytest.fail("this test needs Prometheus: apt-get install prometheus (Debian's package)")
    return found


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_the_dashboard_is_what_its_generator_writes() -> None:
    sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
    try:
        import dashboard
    finally:
        sys.path.pop(0)
    assert json.loads(DASHBOARD.read_text()) == dashboard.build()


def test_every_panel_of_the_dashboard_has_data(sim: Path, tmp_path: Path, redis_url: str,  # noqa: F811
                                               redis_prefix: str, slack: FakeSlack) -> None:  # noqa: F811
    from tests.conftest import sim_inputs

    prometheus = _prometheus()
    doc = yaml.safe_load((ROOT / "logwarden" / "data" / "standard-default.yaml").read_text())
    doc["scopes"] = {"cardholder-data": {"resources": ["payments", "invoices", "customer-exports/*"]}}
    profile = tmp_path / "standard.yaml"
    profile.write_text(yaml.safe_dump(doc))
    metrics, prom = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")} | {
        "LOGWARDEN_METRICS_PORT": str(metrics), "LOGWARDEN_REDIS_URL": redis_url,
        "LOGWARDEN_REDIS_PREFIX": redis_prefix, "LOGWARDEN_SLACK_TOKEN": TOKEN,
        "LOGWARDEN_SLACK_CHANNEL": "#security", "LOGWARDEN_SLACK_API_URL": slack.api_url,
        "LOGWARDEN_SLACK_MIN_INTERVAL": "0", "LOGWARDEN_STANDARD_PROFILE": str(profile)}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                      "scrape_configs": [{"job_name": "logwarden", "static_configs": [
                                          {"targets": [f"127.0.0.1:{metrics}"]}]}]}))
    run = subprocess.Popen([sys.executable, "-m", "logwarden", "run", "--follow",
                            *[x for p in sim_inputs(sim) for x in ("-i", p)]], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{prom}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    queries = [t["expr"].replace("$__rate_interval", "30s").replace("$source", ".*").replace("$scope", ".*")
               for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    empty = queries
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and empty:
            time.sleep(2)
            try:
                empty = [q for q in queries if not _query(prom, q)]
            except OSError:
                continue  # Prometheus still starting
    finally:
        run.send_signal(signal.SIGTERM)
        server.terminate()
        run.wait(60)
        server.wait(30)
    assert len(queries) >= 17 and not empty, empty

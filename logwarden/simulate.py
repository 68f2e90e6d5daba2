"""``logwarden simulate``: realistic logs of a small organisation, with labels.

Six inputs in five formats (web access, sshd/sudo syslog, an API gateway's and a database
gateway's JSON lines, Kubernetes audit, CloudTrail). Benign routine: the organisation's people
in office hours (an admin's occasional failed login, analysts' queries, engineers' kubectl,
the on-call admin at night, a nightly batch job, CI and deploy jobs) and the world around it,
day and night: thousands of internet visitors, search engine crawlers, background scanners
probing the web server and SSH, Kubernetes controllers. Planted attacks, anomalies and
non-compliant lines on the last day are written to ``labels.jsonl`` with their file and line,
so tests and the demo can score detection and prove that planted secrets never reach an
output. Same seed, same files.

``org`` names the organisation: ``acme`` (alice, bob, ...) or any other name, from which a
different set of people, service accounts and office/VPN ranges is derived, with the same
structure of routine, plants and labels.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from logwarden.errors import ConfigError

# acme, the default organisation (its principals are imported elsewhere: keep these names).
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
ADMINS = ["alice", "dave"]
ANALYSTS = ["judy", "ivan"]
ANALYST_IPS = {"judy": "10.20.3.52", "ivan": "10.20.3.37"}
VPN_IPS = {"alice": "10.50.0.21", "dave": "10.50.0.34"}
OFFICE_IPS = [f"10.20.{i}.{j}" for i in range(1, 4) for j in (11, 23, 37, 52)]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
]
CRAWLER = ("66.249.66.1", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
PAGES = ["/", "/docs", "/docs/install", "/pricing", "/blog", "/blog/2024/launch", "/api/v1/items",
         "/account", "/static/app.js", "/static/site.css"]
SOURCES = ("web/access.log", "auth/auth.log", "app/api.jsonl", "k8s/audit.jsonl",
           "cloud/cloudtrail.jsonl", "db/queries.jsonl")


@dataclass(frozen=True)
class Org:
    """An organisation's principals and addresses: everything that differs between two
    simulated organisations. By position in ``users``: 0 and 3 are the admins (on call in
    turn), 8 and 9 the analysts, 1 the engineer of the planted ``k8s_exec``, 4 the clerk of the
    outage and violation lines, 5 the mass downloader; ``intruder`` is the insider account the
    plants misuse. Attackers' addresses and the cluster's own controllers are the same
    everywhere."""

    name: str
    users: tuple[str, ...]
    intruder: str
    office_ips: tuple[str, ...]  # three office subnets, four desks each
    vpn_ips: dict[str, str] = field(hash=False)  # per admin
    svc_etl: str
    svc_ci: str
    svc_deploy: str
    k8s_deployer: str
    k8s_runner: str
    account_id: str  # the AWS account

    @property
    def admins(self) -> tuple[str, str]:
        return self.users[0], self.users[3]

    @property
    def analysts(self) -> tuple[str, str]:
        return self.users[9], self.users[8]

    @property
    def analyst_ips(self) -> dict[str, str]:
        return {self.users[9]: self.office_ips[11], self.users[8]: self.office_ips[10]}

    @property
    def engineers(self) -> tuple[str, ...]:
        return tuple(u for u in self.users if u not in self.analysts)


ACME = Org(name="acme", users=tuple(USERS), intruder="mallory", office_ips=tuple(OFFICE_IPS),
           vpn_ips=dict(VPN_IPS), svc_etl="svc-etl", svc_ci="svc-ci", svc_deploy="svc-deploy",
           k8s_deployer="system:serviceaccount:web:deployer", k8s_runner="system:serviceaccount:ci:runner",
           account_id="111122223333")

_NAME_POOL = tuple(n for n in (
    "aaron", "abigail", "adrian", "amelia", "andrea", "arthur", "beatrice", "benjamin", "bianca",
    "caleb", "camila", "chloe", "daniel", "diana", "edgar", "elena", "emma", "felix", "fiona",
    "gabriel", "georgia", "hannah", "hector", "isaac", "isabel", "jasper", "julia", "kevin",
    "laura", "leon", "lucas", "lydia", "marco", "maria", "martin", "nadia", "nathan", "nina",
    "oliver", "olivia", "oscar", "paula", "peter", "priya", "quentin", "rachel", "rafael", "rosa",
    "samuel", "sara", "simon", "sofia", "teresa", "thomas", "ursula", "victor", "vera", "walter",
    "wendy", "xavier", "yusuf", "yvonne", "zara", "zoe") if n not in (*USERS, ACME.intruder))
_ORG_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def organisation(name: str) -> Org:
    """``acme``, or the organisation derived from ``name`` (same name, same organisation)."""
    key = name.strip().lower()
    if key == ACME.name:
        return ACME
    if not _ORG_NAME.fullmatch(key):
        raise ConfigError(f"organisation name {name!r}: a letter, then up to 30 letters, digits or dashes")
    r = random.Random(int.from_bytes(hashlib.sha256(f"logwarden-org:{key}".encode()).digest()[:8], "big"))
    names = r.sample(_NAME_POOL, 11)
    users = tuple(names[:10])
    office, vpn = r.sample([o for o in range(60, 240) if o != 244], 2)  # not acme's, the runners' or pods'
    desks = sorted(r.sample(range(10, 250), 4))
    vpn_hosts = r.sample(range(2, 250), 2)
    return Org(name=key, users=users, intruder=names[10],
               office_ips=tuple(f"10.{office}.{i}.{j}" for i in range(1, 4) for j in desks),
               vpn_ips={users[0]: f"10.{vpn}.0.{vpn_hosts[0]}", users[3]: f"10.{vpn}.0.{vpn_hosts[1]}"},
               svc_etl=f"svc-{key}-etl", svc_ci=f"svc-{key}-ci", svc_deploy=f"svc-{key}-deploy",
               k8s_deployer=f"system:serviceaccount:web:{key}-deployer",
               k8s_runner=f"system:serviceaccount:ci:{key}-runner",
               account_id=str(r.randint(100_000_000_000, 999_999_999_999)))


@dataclass
class _File:
    path: str
    records: list[tuple[datetime, str, dict[str, Any] | None]] = field(default_factory=list)

    def add(self, ts: datetime, line: str, label: dict[str, Any] | None = None) -> None:
        self.records.append((ts, line, label))


@dataclass
class _Quiet:
    """A file that stays silent during ``quiet`` (the API gateway during the planted outage)."""

    file: _File
    quiet: tuple[datetime, datetime] | None

    def add(self, ts: datetime, line: str) -> None:
        if not (self.quiet and self.quiet[0] <= ts < self.quiet[1]):
            self.file.add(ts, line)


def simulate(out: Path, days: int = 1, seed: int = 7, end: datetime | None = None,
             baseline_days: int = 0, org: str = "acme") -> dict[Path, int]:
    """``days`` of activity with everything planted on the last day; with ``baseline_days``, also
    that many plant-free days before them in ``out/baseline/`` (training data for the model)."""
    who = organisation(org)
    # acme draws what it always drew; another organisation has its own days, not acme's renamed.
    rng = random.Random(seed if who is ACME else f"{who.name}:{seed}")
    # Whole UTC days ending at the last midnight: nothing is in the future.
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    files = {name: _File(name) for name in SOURCES}
    base = {name: _File(name) for name in SOURCES}
    base_days = [start - timedelta(days=baseline_days - day) for day in range(baseline_days)]
    for day_start in base_days:
        _routine(rng, who, base, day_start)
    outage = (end - timedelta(hours=11), end - timedelta(hours=9))  # 13:00-15:00 UTC, last day
    day_starts = [start + timedelta(days=day) for day in range(days)]
    for day_start in day_starts:
        _routine(rng, who, files, day_start, outage if day_start == day_starts[-1] else None)
    files["app/api.jsonl"].add(outage[0], _json({
        "@timestamp": _iso(outage[0]), "user": who.users[4], "src_ip": who.office_ips[0], "action": "read",
        "method": "GET", "outcome": "success", "path": "/api/v1/items"}),
        {"type": "attack", "name": "log_source_silent", "entity": "<path>", "rules": ["log-source-silent"]})
    last_day = end - timedelta(days=1)
    _attacks(rng, who, files, last_day + timedelta(hours=10 + rng.random()), end)
    _anomalies(rng, who, files, last_day)
    _violations(rng, who, files["app/api.jsonl"], last_day + timedelta(hours=12))
    _db_violations(who, files["db/queries.jsonl"], last_day + timedelta(hours=12, minutes=40))
    # The world around the organisation, drawn after everything above so that the routine and
    # the plants draw the same numbers as they did before it existed.
    net = _internet(rng)
    for day_start in base_days:
        _background(rng, who, net, base, day_start)
    for day_start in day_starts:
        _background(rng, who, net, files, day_start, outage if day_start == day_starts[-1] else None)
    written: dict[Path, int] = {}
    if baseline_days:
        written.update(_write(out / "baseline", base))
    written.update(_write(out, files))
    return written


def _office_time(rng: random.Random, day_start: datetime) -> datetime:
    return day_start + timedelta(hours=rng.uniform(8, 18.5))


def _routine(rng: random.Random, org: Org, files: dict[str, _File], day: datetime,
             quiet: tuple[datetime, datetime] | None = None) -> None:
    web, auth, k8s, cloud = (files[n] for n in ("web/access.log", "auth/auth.log", "k8s/audit.jsonl",
                                                "cloud/cloudtrail.jsonl"))
    api = _Quiet(files["app/api.jsonl"], quiet)  # the API gateway's log, silent during the planted outage
    for _ in range(1500):
        ts = _office_time(rng, day)
        ip, ua = rng.choice(org.office_ips), rng.choice(BROWSERS)
        path = rng.choice(PAGES)
        status = 200 if rng.random() > 0.03 else 404
        web.add(ts, _clf(ip, "-", ts, "GET", path, status, rng.randint(200, 40000), ua))
    for _ in range(200):  # a crawler, day and night
        ts = day + timedelta(seconds=rng.uniform(0, 86400))
        web.add(ts, _clf(CRAWLER[0], "-", ts, "GET", rng.choice(PAGES), 200, 5120, CRAWLER[1]))
    for user in org.admins:
        for _ in range(rng.randint(3, 6)):
            ts = _office_time(rng, day)
            auth.add(ts, _sshd(ts, f"Accepted publickey for {user} from {rng.choice(org.office_ips)} "
                                   f"port {rng.randint(30000, 60000)} ssh2"))
        ts = _office_time(rng, day)  # an admin's occasional typo: two failures, then success
        ip = rng.choice(org.office_ips)
        for k in range(2):
            auth.add(ts + timedelta(seconds=k * 4), _sshd(ts, f"Failed password for {user} from {ip} port 40022 ssh2"))
        auth.add(ts + timedelta(seconds=12), _sshd(ts, f"Accepted password for {user} from {ip} port 40022 ssh2"))
        t2 = _office_time(rng, day)
        auth.add(t2, _syslog(t2, "bastion", "sudo", f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
                                                     "COMMAND=/usr/bin/systemctl restart nginx"))
    for _ in range(2500):
        ts = _office_time(rng, day)
        user = rng.choice(org.users)
        action, method = rng.choice([("read", "GET"), ("list", "GET"), ("update", "PUT"), ("login", "POST")])
        api.add(ts, _json({"@timestamp": _iso(ts), "user": user, "src_ip": rng.choice(org.office_ips),
                           "action": action, "method": method, "outcome": "success",
                           "path": f"/api/v1/{rng.choice(['items', 'orders', 'reports'])}",
                           "bytes": rng.randint(100, 9000), "user_agent": rng.choice(BROWSERS)}))
    for analyst in org.analysts:  # analysts query the warehouse in office hours, modest volumes
        for _ in range(rng.randint(20, 40)):
            ts = _office_time(rng, day)
            api.add(ts, _json({"@timestamp": _iso(ts), "user": analyst, "src_ip": org.analyst_ips[analyst],
                               "action": "query", "method": "POST", "outcome": "success",
                               "path": f"/api/v1/warehouse/{rng.choice(['sales', 'traffic', 'churn'])}",
                               "rows": rng.randint(200, 5000), "user_agent": BROWSERS[0]}))
    oncall = _on_call_admin(org, day)  # on call tonight: a few normal actions
    for _ in range(rng.randint(3, 6)):
        ts = day + timedelta(hours=rng.uniform(0.5, 5))
        api.add(ts, _json({"@timestamp": _iso(ts), "user": oncall, "src_ip": org.vpn_ips[oncall], "action": "read",
                           "method": "GET", "outcome": "success", "path": "/api/v1/status",
                           "bytes": rng.randint(200, 3000), "user_agent": BROWSERS[1]}))
    for hour in range(24):  # the nightly batch job runs every hour at night, benign
        if 1 <= hour <= 4:
            ts = day + timedelta(hours=hour, minutes=5)
            api.add(ts, _json({"@timestamp": _iso(ts), "user": org.svc_etl, "src_ip": "10.30.0.5",
                               "action": "read", "method": "GET", "outcome": "success",
                               "path": "/api/v1/export", "rows": 2_500_000,
                               "user_agent": "etl-runner/2.1"}))
    for _ in range(400):
        ts = _office_time(rng, day)
        k8s.add(ts, _json(_k8s_event(ts, "get", org.k8s_deployer, "pods",
                                     "web", "web-7d9f", 200, rng)))
    for _ in range(150):
        ts = _office_time(rng, day)
        cloud.add(ts, _json(_trail(ts, rng.choice(["DescribeInstances", "ListBuckets", "GetObject"]),
                                   rng.choice(org.users), rng.choice(org.office_ips), rng, org.account_id)))


def _on_call_admin(org: Org, day: datetime) -> str:
    return org.admins[day.toordinal() % len(org.admins)]


def _attacks(rng: random.Random, org: Org, files: dict[str, _File], t0: datetime, end: datetime) -> None:
    web, auth, api, k8s, cloud = (files[n] for n in SOURCES[:5])
    # SSH brute force from one address, ending in a successful root login.
    ip = "203.0.113.50"
    label = {"type": "attack", "name": "ssh_bruteforce", "entity": ip,
             "rules": ["ssh-bruteforce-then-success"]}
    for k in range(40):
        ts = t0 + timedelta(seconds=k * 5)
        auth.add(ts, _sshd(ts, f"Failed password for root from {ip} port {40000 + k} ssh2"),
                 label if k == 0 else None)
    ts = t0 + timedelta(seconds=205)
    auth.add(ts, _sshd(ts, f"Accepted password for root from {ip} port 41000 ssh2"))
    # Password spray: one address, many user names, one try each; the organisation's real
    # accounts fail as valid users, the usual guesses as invalid ones.
    ip2 = "198.51.100.77"
    t1 = t0 + timedelta(hours=2)
    for k, user in enumerate([*org.users, "admin", "oracle", "test", "ubuntu", "postgres"]):
        ts = t1 + timedelta(seconds=k * 7)
        invalid = "" if user in org.users else "invalid user "
        auth.add(ts, _sshd(ts, f"Failed password for {invalid}{user} from {ip2} port {50000 + k} ssh2"),
                 {"type": "attack", "name": "password_spray", "entity": ip2,
                  "rules": ["password-spray", "ssh-bruteforce"]} if k == 0 else None)
    # Audit logging stopped via sudo.
    t2 = t0 + timedelta(hours=3)
    intruder = org.intruder
    auth.add(t2, _syslog(t2, "db1", "sudo", f"{intruder} : TTY=pts/3 ; PWD=/tmp ; USER=root ; "
                                              "COMMAND=/usr/bin/systemctl stop auditd"),
             {"type": "attack", "name": "audit_disabled_sudo", "entity": intruder,
              "rules": ["audit-daemon-stopped"]})
    t2b = t2 + timedelta(minutes=2)
    auth.add(t2b, _syslog(t2b, "db1", "sudo", f"{intruder} : TTY=pts/3 ; PWD=/tmp ; USER=root ; "
                                                "COMMAND=/bin/cat /etc/shadow"),
             {"type": "attack", "name": "read_shadow", "entity": intruder, "rules": ["sudo-read-shadow"]})
    # Web login brute force and a scanner.
    ip3 = "192.0.2.200"
    t3 = t0 + timedelta(hours=1)
    for k in range(30):
        ts = t3 + timedelta(seconds=k * 3)
        web.add(ts, _clf(ip3, "-", ts, "POST", "/login", 401, 512, "python-requests/2.31"),
                {"type": "attack", "name": "web_login_bruteforce", "entity": ip3,
                 "rules": ["web-login-bruteforce"]} if k == 0 else None)
    ip4 = "192.0.2.99"
    t4 = t0 + timedelta(hours=4)
    for k in range(60):
        ts = t4 + timedelta(seconds=k)
        web.add(ts, _clf(ip4, "-", ts, "GET", f"/{rng.choice(['admin', 'wp-admin', '.env', 'backup'])}{k}.php",
                         404, 162, "Mozilla/5.00 (Nikto/2.1.6)"),
                {"type": "attack", "name": "web_scan", "entity": ip4,
                 "rules": ["web-404-burst", "web-path-enumeration", "scanner-user-agent"]} if k == 0 else None)
    ts = t4 + timedelta(minutes=5)
    web.add(ts, _clf(ip4, "-", ts, "GET", "/items?id=1%27%20OR%201=1--", 500, 0, "sqlmap/1.7"),
            {"type": "attack", "name": "sqli", "entity": ip4, "rules": ["sqli-or-traversal"]})
    # ... then the payloads sqlmap and traversal scanners really send (what SigmaHQ's rules look for)
    for k, (target, status) in enumerate((("/items?id=1%20UNION%20ALL%20SELECT%20NULL%2CNULL%2Cversion()--", 500),
                                          ("/items?id=1%20AND%20SLEEP(5)%20order%20by%201--", 500),
                                          ("/download?file=../../../etc/passwd", 400))):
        tk = ts + timedelta(seconds=2 + k)
        web.add(tk, _clf(ip4, "-", tk, "GET", target, status, 0, "sqlmap/1.7"), None)
    # Kubernetes: a binding to cluster-admin by someone outside the admin groups.
    t5 = t0 + timedelta(hours=5)
    deployer = org.k8s_deployer
    ev = _k8s_event(t5, "create", deployer, "clusterrolebindings", None, "pwn", 201, rng)
    ev["objectRef"]["apiGroup"] = "rbac.authorization.k8s.io"
    ev["requestObject"] = {"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                           "subjects": [{"kind": "ServiceAccount", "name": deployer.rsplit(":", 1)[1],
                                         "namespace": "web"}]}
    k8s.add(t5, _json(ev), {"type": "attack", "name": "k8s_cluster_admin_binding", "entity": deployer,
                            "rules": ["k8s-cluster-admin-binding"]})
    runner = org.k8s_runner
    for k in range(25):  # secrets enumeration across namespaces
        ts = t5 + timedelta(minutes=20, seconds=k * 3)
        ns = ["web", "db", "payments", "kube-system", "monitoring"][k % 5]
        k8s.add(ts, _json(_k8s_event(ts, "list", runner, "secrets", ns, "", 200, rng)),
                {"type": "attack", "name": "k8s_secrets_enumeration", "entity": runner,
                 "rules": ["k8s-secrets-enumeration"]} if k == 0 else None)
    ts = t5 + timedelta(minutes=40)
    ev = _k8s_event(ts, "create", org.users[1], "pods", "payments", "db-0", 101, rng)
    ev["objectRef"]["subresource"] = "exec"
    ev["requestURI"] += "/exec?command=sh&stdin=true&tty=true"
    k8s.add(ts, _json(ev), {"type": "attack", "name": "k8s_exec", "entity": org.users[1],
                            "rules": ["k8s-exec-sensitive-namespace"]})
    for k in range(60):  # benign: a deploy burst patching deployments
        ts = t5 - timedelta(hours=1) + timedelta(seconds=k)
        k8s.add(ts, _json(_k8s_event(ts, "patch", deployer, "deployments",
                                     "web", f"svc-{k}", 200, rng)))
    # CloudTrail: logging stopped, console login without MFA.
    t6 = t0 + timedelta(hours=6)
    cloud.add(t6, _json(_trail(t6, "StopLogging", intruder, "198.51.100.23", rng, org.account_id)),
              {"type": "attack", "name": "cloudtrail_stop_logging", "entity": intruder,
               "rules": ["cloudtrail-logging-disabled"]})
    for k in range(4):  # console password guessing before the successful login below
        ts = t6 - timedelta(minutes=6) + timedelta(seconds=k * 20)
        failed = _trail(ts, "ConsoleLogin", intruder, "198.51.100.23", rng, org.account_id)
        failed["responseElements"] = {"ConsoleLogin": "Failure"}
        failed["errorMessage"] = "Failed authentication"
        cloud.add(ts, _json(failed))
    login = _trail(t6 - timedelta(minutes=3), "ConsoleLogin", intruder, "198.51.100.23", rng, org.account_id)
    login["responseElements"] = {"ConsoleLogin": "Success"}
    login["additionalEventData"] = {"MFAUsed": "No"}
    cloud.add(t6 - timedelta(minutes=3), _json(login),
              {"type": "attack", "name": "console_login_without_mfa", "entity": intruder,
               "rules": ["console-login-without-mfa", "console-bruteforce-then-success"]})
    # A service account's credentials used from a new address with a new client.
    t7 = t0 + timedelta(hours=7)
    api.add(t7, _json({"@timestamp": _iso(t7), "user": org.svc_etl, "src_ip": "203.0.113.77",
                       "action": "read", "method": "GET", "outcome": "success",
                       "path": "/api/v1/export", "rows": 40_000_000, "user_agent": "curl/8.4.0"}),
            {"type": "attack", "name": "service_account_new_address", "entity": org.svc_etl,
             "rules": ["service-account-new-address", "service-account-new-client"]})


def _anomalies(rng: random.Random, org: Org, files: dict[str, _File], day: datetime) -> None:
    """Behaviour no rule names, for the model: each labelled with the principal and its time."""
    api, cloud = files["app/api.jsonl"], files["cloud/cloudtrail.jsonl"]
    t = day + timedelta(hours=3, minutes=12)  # an analyst's night-time bulk read
    analyst = org.analysts[0]
    for k in range(12):
        ts = t + timedelta(seconds=k * 20)
        api.add(ts, _json({"@timestamp": _iso(ts), "user": analyst, "src_ip": org.analyst_ips[analyst],
                           "action": "query", "method": "POST", "outcome": "success",
                           "path": f"/api/v1/warehouse/customers/{k}", "rows": 700_000, "user_agent": BROWSERS[0]}),
                {"type": "anomaly", "name": "night_bulk_read", "entity": analyst, "rules": []} if k == 0 else None)
    t = day + timedelta(hours=11, minutes=31)  # the batch job's account used interactively
    for k in range(25):
        ts = t + timedelta(seconds=k * 9)
        api.add(ts, _json({"@timestamp": _iso(ts), "user": org.svc_etl, "src_ip": org.office_ips[6],
                           "action": "read", "method": "GET", "outcome": "success", "bytes": rng.randint(500, 4000),
                           "path": f"/api/v1/{rng.choice(['items', 'orders', 'reports', 'users'])}/{k}",
                           "user_agent": BROWSERS[2]}),
                {"type": "anomaly", "name": "service_account_interactive", "entity": org.svc_etl,
                 "rules": ["service-account-new-client"]} if k == 0 else None)
    t = day + timedelta(hours=16, minutes=5)  # a whole bucket downloaded
    downloader = org.users[5]
    for k in range(300):
        ts = t + timedelta(seconds=k * 2)
        ev = _trail(ts, "GetObject", downloader, org.office_ips[1], rng, org.account_id)
        ev["requestParameters"] = {"bucketName": "customer-exports", "key": f"part-{k:04d}.csv.gz"}
        ev["additionalEventData"] = {"bytesTransferredOut": 48_000_000}
        cloud.add(ts, _json(ev), {"type": "anomaly", "name": "mass_download", "entity": downloader, "rules": []}
                  if k == 0 else None)


# One planted value per secret kind; the tests assert none of them reaches any output.
SECRETS = {
    "aws-access-token": "AKIAZ7QXWK3PLM4RT2VB",
    "github-pat": "ghp_" + "R7kPq2ZxV9mW4nL8sT1yB6cD3fG5hJ0aQeUu",
    "stripe-access-token": "sk_live_" + "51HkQ2eLr8mZp4Tx9Wv",
    "bearer-token": "mF9.k2Pq-Zx7Lw3Nb8Vc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlX3NlY3JldA",
    "url-password": "Tr0ub4dor-3",
    "credential-param": "hunter2-Secr3t",
    "private-key": "MIIEowIBAAKCAQEA7Vx9QkYbPz",
}


def _violations(rng: random.Random, org: Org, api: _File, t0: datetime) -> None:
    def plant(k: int, doc_or_line: Any, reason: str, secret: str | None = None) -> None:
        ts = t0 + timedelta(minutes=k)
        line = doc_or_line if isinstance(doc_or_line, str) else _json(doc_or_line)
        label: dict[str, Any] = {"type": "violation", "reason": reason}
        if secret is not None:
            label["secret_kind"] = secret
            label["secret"] = SECRETS[secret]
        api.add(ts, line, label)

    clerk = org.users[4]
    base = {"user": clerk, "src_ip": org.office_ips[0], "action": "read", "outcome": "success",
            "path": "/api/v1/items"}
    ts = lambda k: _iso(t0 + timedelta(minutes=k))  # noqa: E731
    plant(0, {**base, "@timestamp": ts(0), "user": None, "src_ip": None}, "missing_field")
    plant(1, {**base, "@timestamp": ts(1), "action": None}, "missing_field")
    plant(2, {**base, "@timestamp": "yesterday-ish"}, "bad_timestamp")
    plant(3, {**base, "@timestamp": ts(3).replace("Z", "")}, "bad_timestamp")  # no zone
    plant(4, {**base}, "bad_timestamp")  # no timestamp at all
    plant(5, '{"@timestamp": "' + ts(5) + f'", "user": "{clerk}", "action": "re', "malformed")
    plant(6, {**base, "@timestamp": ts(6), "aws_key": SECRETS["aws-access-token"]}, "secret", "aws-access-token")
    plant(7, {**base, "@timestamp": ts(7), "note": f"pushed with {SECRETS['github-pat']}"}, "secret", "github-pat")
    plant(8, {**base, "@timestamp": ts(8), "note": f"charge via {SECRETS['stripe-access-token']}"},
          "secret", "stripe-access-token")
    bearer = f"Bearer {SECRETS['bearer-token']}"
    plant(9, {**base, "@timestamp": ts(9), "authorization": bearer}, "secret", "bearer-token")
    plant(10, {**base, "@timestamp": ts(10), "session": SECRETS["jwt"]}, "secret", "jwt")
    dsn = f"postgres://app:{SECRETS['url-password']}@db1:5432/app"
    plant(11, {**base, "@timestamp": ts(11), "dsn": dsn}, "secret", "url-password")
    plant(12, {**base, "@timestamp": ts(12),
               "path": f"/api/v1/login?user={clerk}&password={SECRETS['credential-param']}"},
          "secret", "credential-param")
    plant(13, {**base, "@timestamp": ts(13), "key": "-----BEGIN RSA PRIVATE KEY-----\n"
               + SECRETS["private-key"] + "\n-----END RSA PRIVATE KEY-----"}, "secret", "private-key")
    plant(14, "this is not a log line at all", "malformed")


def _db_violations(org: Org, db: _File, t0: datetime) -> None:
    """Database queries that name no user: PCI DSS 10.2.2 wants every access to cardholder
    data tied to a person (a reporting tool on a shared connection)."""
    for k, (table, statement, rows) in enumerate((
            ("payments", "SELECT id, invoice_id, amount, currency, status FROM payments WHERE created_at >= $1", 1840),
            ("payments", "SELECT currency, sum(amount) FROM payments WHERE created_at >= $1 GROUP BY currency", 6),
            ("customers", "SELECT id, name, country FROM customers WHERE id = ANY($1)", 212))):
        ts = t0 + timedelta(minutes=3 * k, seconds=17)
        db.add(ts, _json({"@timestamp": _iso(ts), "src_ip": org.office_ips[5], "action": "query",
                          "outcome": "success", "db": "billing", "table": table, "statement": statement,
                          "rows": rows, "duration_ms": 40 + 31 * k}),
               {"type": "violation", "reason": "missing_field"})


# ----------------------------------------------------------------------------------------------
# The world around the organisation: benign, unlabelled, every day.

# Internet visitors' browsers, desktop and mobile.
WEB_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "OPR/115.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 "
    "Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Mobile Safari/537.36",
)
_AGENT_WEIGHTS = (14, 6, 6, 5, 1, 7, 6, 2, 2, 1, 12, 5, 2, 6, 4, 3, 3, 2)
_DOCS = ("install", "quickstart", "configuration", "rules", "alerts", "slack", "kafka", "redis",
         "kubernetes", "cloudtrail", "api", "faq", "upgrade", "security", "retention", "standards")
_POSTS = ("2024/launch", "2024/release-1-2", "2024/pci-dss-4", "2025/anomaly-detection", "2025/kafka-input",
          "2025/kubernetes-audit", "2025/case-study-fintech", "2026/release-2-0", "2026/streaming",
          "2026/benchmarks", "2026/false-positives")
SITE_PAGES = ("/", "/pricing", "/about", "/careers", "/contact", "/changelog", "/security", "/customers",
              "/integrations", "/docs", "/blog", "/status", "/legal/privacy", "/legal/terms",
              *(f"/docs/{d}" for d in _DOCS), *(f"/blog/{p}" for p in _POSTS),
              *(f"/integrations/{i}" for i in ("slack", "pagerduty", "kafka", "datadog", "splunk")))
_OLD_PAGES = ("/blog/2019/hello-world", "/blog/2020/our-stack", "/blog/2020/remote-first", "/docs/v1/install",
              "/docs/v1/configuration", "/docs/v1/api", "/press", "/jobs", "/team", "/blog/tag/news",
              "/integrations/hipchat", "/pricing/enterprise-2020", "/webinar-2021", "/docs/legacy/agents")
_REDIRECTS = {"/signup": "/pricing", "/about-us": "/about", "/docs/getting-started": "/docs/quickstart",
              "/blog/feed": "/blog/feed.xml"}
_ASSETS = (("/static/app.3f9c2a1e.js", 184_233), ("/static/vendor.81be07d4.js", 402_118),
           ("/static/site.5d1e44b0.css", 48_771), ("/static/img/logo.svg", 3_412),
           ("/static/fonts/inter-var.woff2", 98_204), ("/static/img/favicon.svg", 1_210))
_IMAGES = (("/static/img/hero.webp", 88_120), ("/static/img/dashboard.webp", 143_500),
           ("/static/img/flow.svg", 12_400), ("/static/img/customers.webp", 40_321))
_REFERERS = ("-", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
             "https://news.ycombinator.com/", "https://www.reddit.com/", "https://github.com/",
             "https://t.co/", "https://www.linkedin.com/")
_REFERER_WEIGHTS = (30, 40, 5, 4, 3, 3, 6, 3, 6)
# UTC hour weights: the site's visitors are spread over Europe and the Americas.
_DIURNAL = (0.45, 0.38, 0.32, 0.3, 0.32, 0.4, 0.55, 0.7, 0.85, 0.95, 1.0, 1.0,
            1.0, 1.05, 1.1, 1.15, 1.15, 1.1, 1.0, 0.95, 0.85, 0.75, 0.62, 0.52)

CRAWLERS = (  # (user agent, addresses): every one crawls from several
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     ("66.249.66.33", "66.249.68.5", "66.249.79.12")),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     ("66.249.66.160", "66.249.72.41")),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     ("40.77.167.14", "157.55.39.201", "207.46.13.88")),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
     ("5.255.253.120", "213.180.203.18", "95.108.213.44")),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
     ("54.36.148.97", "54.36.149.12", "51.222.253.5")),
    ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
     ("185.191.171.9", "85.208.96.201", "85.208.98.23")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
     "Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
     ("17.241.219.77", "17.241.227.150", "17.22.237.32")),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
     ("20.191.45.212", "40.88.21.235", "52.142.26.175")),
)
_PROBE_AGENTS = (
    "Mozilla/5.0 zgrab/0.x",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Expanse, a Palo Alto Networks company, searches across the global IPv4 space multiple times per day to "
    "identify customers&#39; presences on the Internet. If you would like to be excluded from our scans, please "
    "send IP addresses/domains to: scaninfo@paloaltonetworks.com",
    "Mozilla/5.0 (compatible; InternetMeasurement/1.0; +https://internet-measurement.com/)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 "
    "Safari/537.36",
    "Go-http-client/1.1",
)
_PROBE_PATHS = ("/", "/wp-login.php", "/.env", "/phpmyadmin/", "/cgi-bin/luci/;stok=/locale", "/cgi-bin/test.cgi",
                "/actuator/health", "/.git/config", "/xmlrpc.php", "/wp-includes/wlwmanifest.xml",
                "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/owa/auth/logon.aspx", "/server-status",
                "/.aws/credentials", "/solr/admin/info/system", "/boaform/admin/formLogin")
_SSH_GUESSES = ("admin", "test", "oracle", "ubuntu", "pi", "user", "guest", "postgres", "ftpuser", "git",
                "deploy", "support", "hadoop", "mysql", "jenkins", "minecraft", "ubnt", "tomcat", "elastic",
                "test1", "www", "centos", "nagios", "steam", "dev")


@dataclass(frozen=True)
class _Internet:
    visitors: list[str]  # addresses of the site's visitors (some come back day after day)
    hostile: list[str]  # addresses of background scanners


def _internet(rng: random.Random) -> _Internet:
    """A seeded pool of public-looking IPv4 addresses: none private, shared, loopback,
    link-local, multicast, nor in the TEST-NET ranges the plants use; no crawler's."""
    seen = {ip for _, ips in CRAWLERS for ip in ips} | {CRAWLER[0]}
    pool: list[str] = []
    while len(pool) < 40_000:
        n = rng.getrandbits(32)
        a, b, c, d = n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255
        if not _public(a, b, c, d):
            continue
        ip = f"{a}.{b}.{c}.{d}"
        if ip not in seen:
            seen.add(ip)
            pool.append(ip)
    return _Internet(pool[:32_000], pool[32_000:])


def _public(a: int, b: int, c: int, d: int) -> bool:
    return not (a in (0, 10, 127) or a >= 224 or d in (0, 255)
                or (a == 100 and 64 <= b < 128) or (a == 169 and b == 254)
                or (a == 172 and 16 <= b < 32) or (a == 192 and b == 168)
                or (a == 192 and b == 0 and c in (0, 2)) or (a == 198 and b in (18, 19))
                or (a == 198 and b == 51 and c == 100) or (a == 203 and b == 0 and c == 113))


def _background(rng: random.Random, org: Org, net: _Internet, files: dict[str, _File], day: datetime,
                quiet: tuple[datetime, datetime] | None = None) -> None:
    web = files["web/access.log"]
    _web_visitors(rng, org, net, web, day)
    _crawlers(rng, web, day)
    _web_probes(rng, net, web, day)
    _ssh_scanners(rng, net, files["auth/auth.log"], day)
    _k8s_cluster(rng, org, files["k8s/audit.jsonl"], day)
    _api_automation(rng, org, _Quiet(files["app/api.jsonl"], quiet), day)
    _db_routine(rng, org, files["db/queries.jsonl"], day)
    _night_on_call(rng, org, files, day)


def _diurnal(rng: random.Random, day: datetime) -> datetime:
    hour = rng.choices(range(24), _DIURNAL)[0]
    return day + timedelta(hours=hour + rng.random())


def _web_visitors(rng: random.Random, org: Org, net: _Internet, web: _File, day: datetime) -> None:
    """Thousands of internet visitors: most fetch a page or two, some browse (pages, then their
    assets, with referers); returning visitors get 304s, a few follow old links."""
    site = f"https://www.{org.name}.example"
    for ip in rng.sample(net.visitors, rng.randint(2300, 2700)):
        ua = rng.choices(WEB_AGENTS, _AGENT_WEIGHTS)[0]
        t = _diurnal(rng, day)
        returning = rng.random() < 0.3
        referer = rng.choices(_REFERERS, _REFERER_WEIGHTS)[0]
        if rng.random() < 0.1:  # browsing: 10-40 requests
            views, budget = rng.randint(4, 10), 40
        else:  # a glance: 1-5 requests
            views, budget = 1, rng.choices((1, 2, 3, 4, 5), (30, 15, 15, 20, 20))[0]
        hits: list[tuple[datetime, str, int, int, str]] = []  # (time, path, status, size, referer)
        r = rng.random()
        path = (rng.choice(_OLD_PAGES[:3]) if r < 0.02 else rng.choice(list(_REDIRECTS)) if r < 0.04
                else "/" if r < 0.35 else "/pricing" if r < 0.45 else rng.choice(SITE_PAGES))
        for view in range(views):
            if path in _REDIRECTS:
                hits.append((t, path, 301, 169, referer))
                path = _REDIRECTS[path]
                t += timedelta(seconds=rng.uniform(0.05, 0.4))
            gone = path in _OLD_PAGES
            hits.append((t, path, 404 if gone else 200, 153 if gone else rng.randint(9000, 48000), referer))
            page = site + path
            for asset, size in _ASSETS if view == 0 else rng.sample(_IMAGES, rng.randint(0, 2)):
                cached = returning or view > 0
                hits.append((t + timedelta(seconds=rng.uniform(0.1, 2.5)), asset, 304 if cached else 200,
                             0 if cached else size, page))
            if view == 0 and rng.random() < 0.06:
                hits.append((t + timedelta(seconds=rng.uniform(0.5, 3)), "/favicon.ico", 404, 153, page))
            if view == 0 and ("iPhone" in ua or "iPad" in ua) and rng.random() < 0.3:
                for icon in ("/apple-touch-icon-precomposed.png", "/apple-touch-icon.png"):
                    hits.append((t + timedelta(seconds=rng.uniform(1, 4)), icon, 404, 153, "-"))
            referer = page
            t += timedelta(seconds=rng.uniform(4, 150))
            path = rng.choice(SITE_PAGES)
        for ts, path, status, size, ref in hits[:budget]:
            web.add(ts, _clf(ip, "-", ts, "GET", path, status, size, ua, ref))


def _crawlers(rng: random.Random, web: _File, day: datetime) -> None:
    """Search engines and SEO crawlers, a few sessions a day per address, each in its own hour:
    robots.txt, the sitemap, many pages, a few old pages that are gone (at most 4 a session)."""
    for ua, ips in CRAWLERS:
        for ip in ips:
            for n, hour in enumerate(sorted(rng.sample(range(24), rng.randint(1, 4)))):
                t = day + timedelta(hours=hour + rng.uniform(0, 0.5))
                paths = (["/robots.txt"] if n == 0 else []) + (["/sitemap.xml"] if rng.random() < 0.3 else [])
                missing = 0
                for _ in range(rng.randint(8, 30)):
                    if missing < 4 and rng.random() < 0.07:
                        paths.append(rng.choice(_OLD_PAGES))
                        missing += 1
                    else:
                        paths.append(rng.choice(SITE_PAGES))
                for path in paths:
                    if path in _OLD_PAGES:
                        status, size = 404, 153
                    elif rng.random() < 0.12:
                        status, size = 304, 0
                    else:
                        status, size = 200, rng.randint(2000, 48000)
                    web.add(t, _clf(ip, "-", t, "GET", path, status, size, ua))
                    t += timedelta(seconds=rng.uniform(3, 20))


def _web_probes(rng: random.Random, net: _Internet, web: _File, day: datetime) -> None:
    """The internet's background probing: random addresses, 1-3 requests for well-known
    vulnerable paths, once or twice a day each, a couple an hour."""
    for ip in rng.sample(net.hostile, rng.randint(24, 44)):
        ua = rng.choice(_PROBE_AGENTS)
        for _ in range(1 if rng.random() < 0.8 else 2):
            t = day + timedelta(seconds=rng.uniform(0, 86390))
            for path in rng.sample(_PROBE_PATHS, rng.randint(1, 3)):
                status, size = (200, rng.randint(9000, 48000)) if path == "/" else (404, 153)
                web.add(t, _clf(ip, "-", t, "GET", path, status, size, ua))
                t += timedelta(seconds=rng.uniform(0.2, 3))


def _ssh_scanners(rng: random.Random, net: _Internet, auth: _File, day: datetime) -> None:
    """Internet SSH scanning of the bastion: dozens of addresses with a few guesses each, and a
    few that hammer root for half an hour. None ever gets in."""
    scanners, hammers = rng.randint(30, 60), rng.randint(2, 4)
    addresses = rng.sample(net.hostile, scanners + hammers)
    for ip in addresses[:scanners]:
        t = day + timedelta(seconds=rng.uniform(0, 85000))
        names = rng.sample(_SSH_GUESSES, rng.randint(1, 5))
        for _ in range(rng.randint(1, 8)):
            pid, port = rng.randint(2000, 65000), rng.randint(32768, 60999)
            kind = rng.random()
            if kind < 0.08:  # a banner grab, no authentication
                lines = [f"Did not receive identification string from {ip} port {port}"] if kind < 0.03 else \
                    [f"Connection closed by {ip} port {port} [preauth]"]
            elif kind < 0.35:
                lines = [f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
                         f"rhost={ip}  user=root",
                         f"Failed password for root from {ip} port {port} ssh2"]
            else:
                user = rng.choice(names)
                lines = [f"Invalid user {user} from {ip} port {port}",
                         f"input_userauth_request: invalid user {user} [preauth]",
                         "pam_unix(sshd:auth): check pass; user unknown",
                         f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
                         f"rhost={ip}",
                         f"Failed password for invalid user {user} from {ip} port {port} ssh2"]
            if kind >= 0.08:
                lines.append(f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"
                             if rng.random() < 0.7 else f"Connection closed by {ip} port {port} [preauth]")
            for line in lines:
                auth.add(t, _syslog(t, "bastion", f"sshd[{pid}]", line))
                t += timedelta(seconds=rng.uniform(0.05, 2.5))
            t += timedelta(seconds=rng.uniform(2, 40))
    for ip in addresses[scanners:]:  # persistent: 20-80 failures for root over 10-40 minutes
        start = day + timedelta(seconds=rng.uniform(0, 86400 - 2500))
        span = rng.uniform(600, 2400)
        times = sorted(rng.uniform(0, span) for _ in range(rng.randint(20, 80)))
        pid, port = rng.randint(2000, 65000), rng.randint(32768, 60999)
        for k, offset in enumerate(times):
            t = start + timedelta(seconds=offset)
            if k % 6 == 0:
                pid, port = rng.randint(2000, 65000), rng.randint(32768, 60999)
            auth.add(t, _syslog(t, "bastion", f"sshd[{pid}]", f"Failed password for root from {ip} port {port} ssh2"))
            if k % 6 == 5 or k == len(times) - 1:
                t += timedelta(seconds=0.5)
                done = (["Disconnecting: Too many authentication failures for root [preauth]",
                         f"PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  "
                         "user=root"] if k % 6 == 5 else
                        [f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"])
                for line in done:
                    auth.add(t, _syslog(t, "bastion", f"sshd[{pid}]", line))


# Kubernetes: the cluster's own controllers and the CI runner, all day and night, each from a
# pod address that changes when its pod is replaced (every 1-4 hours), with a fixed client.
_K8S_VERSION = "kubernetes/4b8e819"
_PODS = {
    "web": ("web-7d9f8c6b5-x2k4q", "web-7d9f8c6b5-p8m2z", "frontend-5c6d9b7f4-kq9wd"),
    "api": ("api-6b8c7d9f5-r4t7n", "api-6b8c7d9f5-h2j5v", "worker-84f6c9d7b-z8x3c"),
    "staging": ("web-5f7c8d6b9-m3n8b", "api-7c9d8b6f5-w2e4r", "worker-6d8f9c7b5-q7y2k"),
    "payments": ("payments-api-6c9f7d8b4-t5r2w", "db-0", "db-1"),
    "monitoring": ("prometheus-0", "grafana-7b8d9c6f5-v3n6m"),
    "argocd": ("argocd-server-5d7f9b8c6-k2j8h", "argocd-repo-server-6f8b7c9d5-m4x7p"),
    "ci": ("runner-manager-7c6d8f9b5-n8b3v",),
    "kube-system": ("coredns-76f75df574-2xk9p", "kube-proxy-8zq4m"),
}
_DEPLOYMENTS = {"web": ("web", "frontend"), "api": ("api", "worker"), "staging": ("web", "api", "worker")}
_CONTROLLERS = (  # (user, agent, daily events, [(verb, resource, api group, subresource)])
    ("system:serviceaccount:kube-system:replicaset-controller",
     f"kube-controller-manager/v1.29.1 (linux/amd64) {_K8S_VERSION}/system:serviceaccount:kube-system:"
     "replicaset-controller", (250, 350),
     (("watch", "pods", "", None), ("list", "pods", "", None), ("get", "pods", "", None),
      ("get", "deployments", "apps", None), ("watch", "replicasets", "apps", None),
      ("update", "replicasets", "apps", "status"))),
    ("system:serviceaccount:kube-system:endpointslice-controller",
     f"kube-controller-manager/v1.29.1 (linux/amd64) {_K8S_VERSION}/system:serviceaccount:kube-system:"
     "endpointslice-controller", (250, 350),
     (("watch", "endpoints", "", None), ("list", "pods", "", None), ("get", "endpoints", "", None),
      ("watch", "services", "", None), ("update", "endpointslices", "discovery.k8s.io", None))),
    ("system:serviceaccount:argocd:argocd-application-controller",
     "argocd-application-controller/v2.9.3 (linux/amd64)", (220, 320),
     (("list", "deployments", "apps", None), ("watch", "deployments", "apps", None),
      ("get", "deployments", "apps", None), ("get", "configmaps", "", None), ("list", "pods", "", None),
      ("watch", "configmaps", "", None))),
    ("system:serviceaccount:monitoring:prometheus", "Prometheus/2.48.1", (380, 520),
     (("list", "pods", "", None), ("watch", "pods", "", None), ("watch", "endpoints", "", None),
      ("list", "endpoints", "", None), ("get", "nodes", "", "metrics"), ("get", "configmaps", "", None))),
)
_RUNNER_AGENT = "kubectl/v1.29.1"  # the pipelines' kubectl
_HOME_NAMESPACES = (("web",), ("web", "api"), ("api",), ("staging", "web"), ("api", "staging"))
_KUBECTL_OS = ("darwin/arm64", "linux/amd64", "darwin/amd64", "windows/amd64")


def _pod_ips(rng: random.Random, day: datetime) -> tuple[list[datetime], list[str]]:
    """When each of a day's pods started and its address: a new pod every 1-4 hours."""
    starts: list[datetime] = []
    ips: list[str] = []
    t = day - timedelta(hours=rng.uniform(0, 1))
    while t < day + timedelta(days=1):
        ip = f"10.244.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        if ip not in ips:
            starts.append(t)
            ips.append(ip)
            t += timedelta(hours=rng.uniform(1, 4))
    return starts, ips


def _k8s_cluster(rng: random.Random, org: Org, k8s: _File, day: datetime) -> None:
    for user, agent, volume, acts in _CONTROLLERS:
        starts, ips = _pod_ips(rng, day)
        ns_of = user.split(":")[2]
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns_of}", "system:authenticated"]
        for _ in range(rng.randint(*volume)):
            ts = day + timedelta(seconds=rng.uniform(0, 86399))
            verb, resource, group, sub = rng.choice(acts)
            if resource == "nodes":
                ns, name = None, f"node-{rng.randint(1, 3)}"
            else:
                ns = rng.choice(list(_PODS))
                name = (rng.choice(_PODS[ns]) if resource == "pods" else
                        rng.choice(_DEPLOYMENTS.get(ns, (ns,))) if resource in ("deployments", "replicasets")
                        else f"{ns}-config" if resource == "configmaps" else ns)
                if verb in ("list", "watch"):
                    name = ""
            code = 404 if verb == "get" and rng.random() < 0.01 else 200
            k8s.add(ts, _json(_k8s(ts, verb, user, groups, resource, ns, name, code, rng,
                                   ips[bisect.bisect_right(starts, ts) - 1], agent, sub=sub, group=group)))
    # The CI runner's token: scheduled jobs check its namespace all day; in office hours,
    # pipelines patch deployments in web and api and read a couple of the runner's own secrets
    # (never 5 in 5 minutes).
    runner = org.k8s_runner
    starts, ips = _pod_ips(rng, day)
    groups = ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]

    def run(ts: datetime, verb: str, resource: str, ns: str, name: str, code: int = 200,
            group: str = "") -> None:
        k8s.add(ts, _json(_k8s(ts, verb, runner, groups, resource, ns, name, code, rng,
                               ips[bisect.bisect_right(starts, ts) - 1], _RUNNER_AGENT, group=group)))

    for slot in range(144):
        ts = day + timedelta(minutes=10 * slot + rng.uniform(0, 2))
        run(ts, *(("get", "configmaps", "ci", "runner-config") if slot % 2 else ("list", "pods", "ci", "")))
    for slot in sorted(rng.sample(range(48, 110), rng.randint(10, 20))):  # 10-minute slots, 08:00-18:20
        ts = day + timedelta(minutes=10 * slot + rng.uniform(0, 3))
        for secret in rng.sample(("registry-auth", "ci-cache", "deploy-kubeconfig"), rng.randint(1, 2)):
            run(ts, "get", "secrets", "ci", secret)
            ts += timedelta(seconds=rng.uniform(1, 5))
        ns = rng.choice(("web", "api"))
        for deployment in rng.sample(_DEPLOYMENTS[ns], rng.randint(1, 2)):
            run(ts, "get", "deployments", ns, deployment, group="apps")
            ts += timedelta(seconds=rng.uniform(1, 20))
            run(ts, rng.choice(("patch", "patch", "update")), "deployments", ns, deployment, group="apps")
            ts += timedelta(seconds=rng.uniform(5, 60))
        run(ts, "list", "pods", ns, "")
    # Engineers in office hours, in their usual namespaces: exec, port-forward, pods and logs.
    for i, user in enumerate(org.engineers):
        homes = _HOME_NAMESPACES[i % len(_HOME_NAMESPACES)]
        agent = f"kubectl/v1.29.1 ({_KUBECTL_OS[i % len(_KUBECTL_OS)]}) {_K8S_VERSION}"
        desk = rng.choice(org.office_ips)
        actions = (["exec"] * rng.randint(0, 3) + ["portforward"] * rng.randint(0, 2)
                   + ["pods"] * rng.randint(2, 8) + ["log"] * rng.randint(1, 5))
        for what in actions:
            _kubectl(rng, k8s, _office_time(rng, day), user, rng.choice(homes), what, desk, agent)


def _kubectl(rng: random.Random, k8s: _File, ts: datetime, user: str, ns: str, what: str, ip: str,
             agent: str) -> None:
    groups = ["oidc:engineering", "system:authenticated"]
    pod = rng.choice(_PODS[ns])
    if what == "pods":
        ev = _k8s(ts, "list", user, groups, "pods", ns, "", 200, rng, ip, agent)
    elif what == "log":
        ev = _k8s(ts, "get", user, groups, "pods", ns, pod, 200, rng, ip, agent, sub="log",
                  query=f"container={pod.split('-')[0]}&tailLines=200")
    elif what == "exec":
        ev = _k8s(ts, "create", user, groups, "pods", ns, pod, 101, rng, ip, agent, sub="exec",
                  query=f"command={rng.choice(('sh', 'bash'))}&stdin=true&tty=true")
    else:
        ev = _k8s(ts, "create", user, groups, "pods", ns, pod, 101, rng, ip, agent, sub="portforward",
                  query=f"ports={rng.choice((8080, 9090, 5432))}")
    k8s.add(ts, _json(ev))


def _api_automation(rng: random.Random, org: Org, api: _Quiet, day: datetime) -> None:
    """CI and deploy jobs calling the API, each run from a fresh runner address in 10.30/16,
    with one client per account; mostly in office hours, a nightly build too."""
    jobs = ((org.svc_ci, "gitlab-runner/16.6.1", (12, 24), (("read", "GET", "/api/v1/status"),
             ("create", "POST", "/api/v1/builds"), ("read", "GET", "/api/v1/artifacts"),
             ("update", "PUT", "/api/v1/builds/{n}"))),
            (org.svc_deploy, "deploy-bot/3.2.0", (3, 8), (("read", "GET", "/api/v1/releases"),
             ("create", "POST", "/api/v1/releases"), ("update", "PUT", "/api/v1/deployments/{n}"),
             ("read", "GET", "/api/v1/status"))))
    for user, agent, per_day, calls in jobs:
        runs = [_office_time(rng, day) for _ in range(rng.randint(*per_day))]
        runs.append(day + timedelta(hours=rng.uniform(1, 5)))  # the nightly one
        for t in runs:
            ip = f"10.30.{rng.randint(1, 254)}.{rng.randint(2, 254)}"
            for _ in range(rng.randint(3, 8)):
                action, method, path = rng.choice(calls)
                api.add(t, _json({"@timestamp": _iso(t), "user": user, "src_ip": ip, "action": action,
                                  "method": method, "outcome": "success",
                                  "path": path.format(n=rng.randint(1000, 9999)),
                                  "bytes": rng.randint(150, 6000), "user_agent": agent}))
                t += timedelta(seconds=rng.uniform(2, 30))


_DB_QUERIES = {  # db: [(table, statement, typical rows)]
    "analytics": (
        ("events", "SELECT date_trunc('day', ts) AS day, count(*) FROM events WHERE ts >= $1 GROUP BY 1 "
         "ORDER BY 1", 30),
        ("sessions", "SELECT country, count(DISTINCT visitor_id) FROM sessions WHERE started_at >= $1 GROUP BY country",
         60),
        ("signups", "SELECT plan, count(*) FROM signups WHERE created_at >= $1 GROUP BY plan", 5),
        ("events", "SELECT page, count(*) AS views FROM events WHERE ts >= $1 GROUP BY page ORDER BY views DESC "
         "LIMIT 100", 100)),
    "billing": (
        ("invoices", "SELECT id, customer_id, total, status FROM invoices WHERE issued_at >= $1 "
         "ORDER BY issued_at DESC LIMIT 200", 200),
        ("subscriptions", "SELECT plan, status, count(*) FROM subscriptions GROUP BY plan, status", 12),
        ("customers", "SELECT id, name, country, created_at FROM customers WHERE id = $1", 1),
        ("payments", "SELECT id, invoice_id, amount, currency, status FROM payments WHERE invoice_id = $1", 2)),
    "app": (
        ("orders", "SELECT id, status, updated_at FROM orders WHERE id = $1", 1),
        ("items", "SELECT id, sku, stock FROM items WHERE sku = $1", 1),
        ("users", "SELECT id, email_verified, last_seen_at FROM users WHERE id = $1", 1),
        ("orders", "UPDATE orders SET status = 'cancelled' WHERE id = $1", 1),
        ("jobs", "SELECT id, state, attempts FROM jobs WHERE state = 'failed' ORDER BY id DESC LIMIT 50", 50)),
}
_ETL_TABLES = ("invoices", "payments", "subscriptions", "customers")


def _db_routine(rng: random.Random, org: Org, db: _File, day: datetime) -> None:
    """The database gateway: analysts and engineers in their hours, the batch job at night.
    Every routine query names its user."""

    def query(ts: datetime, user: str, ip: str, name: str) -> None:
        table, statement, rows = rng.choice(_DB_QUERIES[name])
        doc = {"@timestamp": _iso(ts), "user": user, "src_ip": ip, "action": "query", "outcome": "success",
               "db": name, "table": table, "statement": statement,
               "rows": max(1, round(rows * rng.uniform(0.3, 1.5))), "duration_ms": rng.randint(2, 900)}
        if rng.random() < 0.02:
            doc.update(outcome="failure", rows=0, error=rng.choice(
                ("canceling statement due to statement timeout", f"permission denied for table {table}")))
        db.add(ts, _json(doc))

    for analyst in org.analysts:
        for _ in range(rng.randint(50, 110)):
            query(_office_time(rng, day), analyst, org.analyst_ips[analyst],
                  "analytics" if rng.random() < 0.7 else "billing")
    for user in org.engineers:
        desk = rng.choice(org.office_ips)
        for _ in range(rng.randint(5, 30)):
            query(_office_time(rng, day), user, desk, "app" if rng.random() < 0.75 else "billing")
    for hour in range(1, 5):  # the nightly batch job's exports
        ts = day + timedelta(hours=hour, minutes=6)
        for table in _ETL_TABLES:
            db.add(ts, _json({"@timestamp": _iso(ts), "user": org.svc_etl, "src_ip": "10.30.0.5",
                              "action": "query", "outcome": "success", "db": "billing", "table": table,
                              "statement": f"COPY (SELECT * FROM {table} WHERE updated_at >= $1) TO STDOUT",
                              "rows": rng.randint(20_000, 600_000), "duration_ms": rng.randint(2_000, 60_000)}))
            ts += timedelta(seconds=rng.uniform(10, 90))


_ON_CALL_COMMANDS = ("/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -u api --since -1h",
                     "/usr/bin/systemctl status api", "/usr/bin/tail -n 200 /var/log/nginx/error.log")


def _night_on_call(rng: random.Random, org: Org, files: dict[str, _File], day: datetime) -> None:
    """Tonight's on-call admin logs into the bastion from the VPN, runs a command or two and
    reads pod logs."""
    auth, k8s = files["auth/auth.log"], files["k8s/audit.jsonl"]
    admin = _on_call_admin(org, day)
    ip = org.vpn_ips[admin]
    t = day + timedelta(hours=rng.uniform(0.5, 4.5))
    pid, port = rng.randint(2000, 65000), rng.randint(40000, 65000)

    def sshd(ts: datetime, msg: str) -> None:
        auth.add(ts, _syslog(ts, "bastion", f"sshd[{pid}]", msg))

    sshd(t, f"Accepted publickey for {admin} from {ip} port {port} ssh2")
    sshd(t + timedelta(seconds=0.2), f"pam_unix(sshd:session): session opened for user {admin} by (uid=0)")
    ts = t
    for command in rng.sample(_ON_CALL_COMMANDS, rng.randint(1, 2)):
        ts += timedelta(minutes=rng.uniform(1, 6))
        auth.add(ts, _syslog(ts, "bastion", "sudo", f"{admin} : TTY=pts/1 ; PWD=/home/{admin} ; USER=root ; "
                                                     f"COMMAND={command}"))
    agent = f"kubectl/v1.29.1 (darwin/arm64) {_K8S_VERSION}"
    for what in ["pods", *["log"] * rng.randint(1, 3)]:
        ts += timedelta(minutes=rng.uniform(0.5, 4))
        _kubectl(rng, k8s, ts, admin, rng.choice(("web", "api")), what, ip, agent)
    ts += timedelta(minutes=rng.uniform(2, 15))
    sshd(ts, f"Received disconnect from {ip} port {port}:11: disconnected by user")
    sshd(ts, f"Disconnected from user {admin} {ip} port {port}")
    sshd(ts, f"pam_unix(sshd:session): session closed for user {admin}")


def _write(out: Path, files: dict[str, _File]) -> dict[Path, int]:
    written: dict[Path, int] = {}
    labels: list[bytes] = []
    for name, f in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        f.records.sort(key=lambda r: r[0])
        with open(path, "w", encoding="utf-8") as fh:
            for lineno, (ts, line, label) in enumerate(f.records, 1):
                fh.write(line + "\n")
                if label is not None:
                    entity = str(path) if label.get("entity") == "<path>" else label.get("entity")
                    labels.append(orjson.dumps({**label, "entity": entity, "source": str(path),
                                                "line": lineno, "time": _iso(ts)}) + b"\n")
        written[path] = len(f.records)
    (out / "labels.jsonl").write_bytes(b"".join(labels))
    written[out / "labels.jsonl"] = len(labels)
    return written


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(doc: dict[str, Any]) -> str:
    return orjson.dumps({k: v for k, v in doc.items() if v is not None}).decode()


def _clf(ip: str, user: str, ts: datetime, method: str, path: str, status: int, size: int, ua: str,
         referer: str = "-") -> str:
    return (f'{ip} - {user} [{ts.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{method} {path} HTTP/1.1" '
            f'{status} {size} "{referer}" "{ua}"')


def _syslog(ts: datetime, host: str, prog: str, msg: str) -> str:
    return f"{ts.strftime('%b')} {ts.day:>2} {ts.strftime('%H:%M:%S')} {host} {prog}: {msg}"


def _sshd(ts: datetime, msg: str) -> str:
    return _syslog(ts, "bastion", f"sshd[{ts.second * 100 + ts.minute}]", msg)


def _k8s_event(ts: datetime, verb: str, user: str, resource: str, ns: str | None, name: str,
               code: int, rng: random.Random) -> dict[str, Any]:
    uri = f"/apis/rbac.authorization.k8s.io/v1/{resource}" if ns is None else \
        f"/api/v1/namespaces/{ns}/{resource}/{name}"
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": str(uuid.UUID(int=rng.getrandbits(128))), "stage": "ResponseComplete",
            "requestURI": uri, "verb": verb, "user": {"username": user, "groups": ["system:serviceaccounts"]},
            "sourceIPs": ["10.40.0.8"], "userAgent": "kubectl/v1.29.1",
            "objectRef": {"resource": resource, "namespace": ns, "name": name, "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _iso(ts), "stageTimestamp": _iso(ts)}


def _k8s(ts: datetime, verb: str, user: str, groups: list[str], resource: str, ns: str | None, name: str,
         code: int, rng: random.Random, ip: str, agent: str, *, sub: str | None = None, group: str = "",
         query: str = "") -> dict[str, Any]:
    """An audit event of the world's routine, with its real URI, client and address."""
    version = "v1"
    uri = (f"/apis/{group}/{version}" if group else "/api/v1") + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
    uri += (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
    query = query or ("watch=true" if verb == "watch" else "limit=500" if verb == "list" else "")
    ref = {"resource": resource, "namespace": ns, "name": name or None, "apiGroup": group or None,
           "apiVersion": version, "subresource": sub}
    done = ts + timedelta(milliseconds=rng.randint(2, 40) if verb != "watch" else rng.randint(60_000, 540_000))
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": str(uuid.UUID(int=rng.getrandbits(128))), "stage": "ResponseComplete",
            "requestURI": uri + (f"?{query}" if query else ""), "verb": verb,
            "user": {"username": user, "groups": groups}, "sourceIPs": [ip], "userAgent": agent,
            "objectRef": {k: v for k, v in ref.items() if v is not None},
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _iso(ts), "stageTimestamp": _iso(done)}


def _trail(ts: datetime, name: str, user: str, ip: str, rng: random.Random,
           account: str = "111122223333") -> dict[str, Any]:
    source = {"StopLogging": "cloudtrail", "ConsoleLogin": "signin", "GetObject": "s3",
              "ListBuckets": "s3", "DescribeInstances": "ec2"}[name]
    return {"eventVersion": "1.08", "eventTime": _iso(ts), "eventSource": f"{source}.amazonaws.com",
            "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": ip,
            "userAgent": "aws-cli/2.15.0", "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "eventType": "AwsApiCall", "recipientAccountId": account,
            "userIdentity": {"type": "IAMUser", "userName": user, "accountId": account,
                             "arn": f"arn:aws:iam::{account}:user/{user}",
                             # every real record names its caller's access key id (expected, not a leak)
                             "accessKeyId": "AKIA" + hashlib.sha256(f"{account}:{user}".encode()).hexdigest()[:16]
                             .upper()},
            "requestParameters": {"bucketName": "reports", "key": "q3.csv"} if name == "GetObject" else {},
            "additionalEventData": {"bytesTransferredOut": rng.randint(2_000, 60_000)} if name == "GetObject" else {}}

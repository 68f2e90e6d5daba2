"""``logwarden simulate``: realistic logs of a small organisation, with labels.

Five inputs in five formats (web access, sshd/sudo syslog, an API gateway's JSON lines,
Kubernetes audit, CloudTrail), benign routine (office hours, an admin's occasional failed
login, crawlers, a nightly batch job) and planted attacks and non-compliant lines. Every plant
is written to ``labels.jsonl`` with its file and line, so tests and the demo can score
detection and prove that planted secrets never reach an output. Same seed, same files.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

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


@dataclass
class _File:
    path: str
    records: list[tuple[datetime, str, dict[str, Any] | None]] = field(default_factory=list)

    def add(self, ts: datetime, line: str, label: dict[str, Any] | None = None) -> None:
        self.records.append((ts, line, label))


def simulate(out: Path, days: int = 1, seed: int = 7, end: datetime | None = None,
             baseline_days: int = 0) -> dict[Path, int]:
    """``days`` of activity with everything planted on the last day; with ``baseline_days``, also
    that many plant-free days before them in ``out/baseline/`` (training data for the model)."""
    rng = random.Random(seed)
    # Whole UTC days ending at the last midnight: nothing is in the future.
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    files = {name: _File(name) for name in
             ("web/access.log", "auth/auth.log", "app/api.jsonl", "k8s/audit.jsonl",
              "cloud/cloudtrail.jsonl")}
    written: dict[Path, int] = {}
    if baseline_days:
        base = {name: _File(name) for name in files}
        for day in range(baseline_days):
            _routine(rng, base, start - timedelta(days=baseline_days - day))
        written.update(_write(out / "baseline", base))
    outage = (end - timedelta(hours=11), end - timedelta(hours=9))  # 13:00-15:00 UTC, last day
    for day in range(days):
        day_start = start + timedelta(days=day)
        _routine(rng, files, day_start, outage if day == days - 1 else None)
    files["app/api.jsonl"].add(outage[0], _json({
        "@timestamp": _iso(outage[0]), "user": "erin", "src_ip": "10.20.1.11", "action": "read",
        "method": "GET", "outcome": "success", "path": "/api/v1/items"}),
        {"type": "attack", "name": "log_source_silent", "entity": "<path>", "rules": ["log-source-silent"]})
    last_day = end - timedelta(days=1)
    _attacks(rng, files, last_day + timedelta(hours=10 + rng.random()), end)
    _anomalies(rng, files, last_day)
    _violations(rng, files["app/api.jsonl"], last_day + timedelta(hours=12))
    written.update(_write(out, files))
    return written


def _office_time(rng: random.Random, day_start: datetime) -> datetime:
    return day_start + timedelta(hours=rng.uniform(8, 18.5))


def _routine(rng: random.Random, files: dict[str, _File], day: datetime,
             quiet: tuple[datetime, datetime] | None = None) -> None:
    web, auth, api_file, k8s, cloud = (files[n] for n in files)

    class _Api:  # the API gateway's log, silent during the planted outage
        @staticmethod
        def add(ts: datetime, line: str) -> None:
            if not (quiet and quiet[0] <= ts < quiet[1]):
                api_file.add(ts, line)

    api = _Api()
    for _ in range(1500):
        ts = _office_time(rng, day)
        ip, ua = rng.choice(OFFICE_IPS), rng.choice(BROWSERS)
        path = rng.choice(PAGES)
        status = 200 if rng.random() > 0.03 else 404
        web.add(ts, _clf(ip, "-", ts, "GET", path, status, rng.randint(200, 40000), ua))
    for _ in range(200):  # a crawler, day and night
        ts = day + timedelta(seconds=rng.uniform(0, 86400))
        web.add(ts, _clf(CRAWLER[0], "-", ts, "GET", rng.choice(PAGES), 200, 5120, CRAWLER[1]))
    for user in ADMINS:
        for _ in range(rng.randint(3, 6)):
            ts = _office_time(rng, day)
            auth.add(ts, _sshd(ts, f"Accepted publickey for {user} from {rng.choice(OFFICE_IPS)} "
                                   f"port {rng.randint(30000, 60000)} ssh2"))
        ts = _office_time(rng, day)  # an admin's occasional typo: two failures, then success
        ip = rng.choice(OFFICE_IPS)
        for k in range(2):
            auth.add(ts + timedelta(seconds=k * 4), _sshd(ts, f"Failed password for {user} from {ip} port 40022 ssh2"))
        auth.add(ts + timedelta(seconds=12), _sshd(ts, f"Accepted password for {user} from {ip} port 40022 ssh2"))
        t2 = _office_time(rng, day)
        auth.add(t2, _syslog(t2, "bastion", "sudo", f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
                                                     "COMMAND=/usr/bin/systemctl restart nginx"))
    for _ in range(2500):
        ts = _office_time(rng, day)
        user = rng.choice(USERS)
        action, method = rng.choice([("read", "GET"), ("list", "GET"), ("update", "PUT"), ("login", "POST")])
        api.add(ts, _json({"@timestamp": _iso(ts), "user": user, "src_ip": rng.choice(OFFICE_IPS),
                           "action": action, "method": method, "outcome": "success",
                           "path": f"/api/v1/{rng.choice(['items', 'orders', 'reports'])}",
                           "bytes": rng.randint(100, 9000), "user_agent": rng.choice(BROWSERS)}))
    for analyst in ANALYSTS:  # analysts query the warehouse in office hours, modest volumes
        for _ in range(rng.randint(20, 40)):
            ts = _office_time(rng, day)
            api.add(ts, _json({"@timestamp": _iso(ts), "user": analyst, "src_ip": ANALYST_IPS[analyst],
                               "action": "query", "method": "POST", "outcome": "success",
                               "path": f"/api/v1/warehouse/{rng.choice(['sales', 'traffic', 'churn'])}",
                               "rows": rng.randint(200, 5000), "user_agent": BROWSERS[0]}))
    oncall = ADMINS[day.toordinal() % len(ADMINS)]  # on call tonight: a few normal actions
    for _ in range(rng.randint(3, 6)):
        ts = day + timedelta(hours=rng.uniform(0.5, 5))
        api.add(ts, _json({"@timestamp": _iso(ts), "user": oncall, "src_ip": VPN_IPS[oncall], "action": "read",
                           "method": "GET", "outcome": "success", "path": "/api/v1/status",
                           "bytes": rng.randint(200, 3000), "user_agent": BROWSERS[1]}))
    for hour in range(24):  # the nightly batch job runs every hour at night, benign
        if 1 <= hour <= 4:
            ts = day + timedelta(hours=hour, minutes=5)
            api.add(ts, _json({"@timestamp": _iso(ts), "user": "svc-etl", "src_ip": "10.30.0.5",
                               "action": "read", "method": "GET", "outcome": "success",
                               "path": "/api/v1/export", "rows": 2_500_000,
                               "user_agent": "etl-runner/2.1"}))
    for _ in range(400):
        ts = _office_time(rng, day)
        k8s.add(ts, _json(_k8s_event(ts, "get", "system:serviceaccount:web:deployer", "pods",
                                     "web", "web-7d9f", 200, rng)))
    for _ in range(150):
        ts = _office_time(rng, day)
        cloud.add(ts, _json(_trail(ts, rng.choice(["DescribeInstances", "ListBuckets", "GetObject"]),
                                   rng.choice(USERS), rng.choice(OFFICE_IPS), rng)))


def _attacks(rng: random.Random, files: dict[str, _File], t0: datetime, end: datetime) -> None:
    web, auth, api, k8s, cloud = (files[n] for n in files)
    # SSH brute force from one address, ending in a successful root login.
    ip = "203.0.113.50"
    label = {"type": "attack", "name": "ssh_bruteforce", "entity": ip,
             "rules": ["ssh-bruteforce", "ssh-bruteforce-then-success"]}
    for k in range(40):
        ts = t0 + timedelta(seconds=k * 5)
        auth.add(ts, _sshd(ts, f"Failed password for root from {ip} port {40000 + k} ssh2"),
                 label if k == 0 else None)
    ts = t0 + timedelta(seconds=205)
    auth.add(ts, _sshd(ts, f"Accepted password for root from {ip} port 41000 ssh2"))
    # Password spray: one address, many user names, one try each.
    ip2 = "198.51.100.77"
    t1 = t0 + timedelta(hours=2)
    for k, user in enumerate([*USERS, "admin", "oracle", "test", "ubuntu", "postgres"]):
        ts = t1 + timedelta(seconds=k * 7)
        auth.add(ts, _sshd(ts, f"Failed password for invalid user {user} from {ip2} port {50000 + k} ssh2"),
                 {"type": "attack", "name": "password_spray", "entity": ip2,
                  "rules": ["password-spray", "ssh-bruteforce"]} if k == 0 else None)
    # Audit logging stopped via sudo.
    t2 = t0 + timedelta(hours=3)
    auth.add(t2, _syslog(t2, "db1", "sudo", "mallory : TTY=pts/3 ; PWD=/tmp ; USER=root ; "
                                              "COMMAND=/usr/bin/systemctl stop auditd"),
             {"type": "attack", "name": "audit_disabled_sudo", "entity": "mallory",
              "rules": ["audit-daemon-stopped"]})
    t2b = t2 + timedelta(minutes=2)
    auth.add(t2b, _syslog(t2b, "db1", "sudo", "mallory : TTY=pts/3 ; PWD=/tmp ; USER=root ; "
                                                "COMMAND=/bin/cat /etc/shadow"),
             {"type": "attack", "name": "read_shadow", "entity": "mallory", "rules": ["sudo-read-shadow"]})
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
    # Kubernetes: a binding to cluster-admin by someone outside the admin groups.
    t5 = t0 + timedelta(hours=5)
    ev = _k8s_event(t5, "create", "system:serviceaccount:web:deployer", "clusterrolebindings",
                    None, "pwn", 201, rng)
    ev["objectRef"]["apiGroup"] = "rbac.authorization.k8s.io"
    ev["requestObject"] = {"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                           "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "web"}]}
    k8s.add(t5, _json(ev), {"type": "attack", "name": "k8s_cluster_admin_binding",
                            "entity": "system:serviceaccount:web:deployer",
                            "rules": ["k8s-cluster-admin-binding"]})
    runner = "system:serviceaccount:ci:runner"
    for k in range(25):  # secrets enumeration across namespaces
        ts = t5 + timedelta(minutes=20, seconds=k * 3)
        ns = ["web", "db", "payments", "kube-system", "monitoring"][k % 5]
        k8s.add(ts, _json(_k8s_event(ts, "list", runner, "secrets", ns, "", 200, rng)),
                {"type": "attack", "name": "k8s_secrets_enumeration", "entity": runner,
                 "rules": ["k8s-secrets-enumeration"]} if k == 0 else None)
    ts = t5 + timedelta(minutes=40)
    ev = _k8s_event(ts, "create", "bob", "pods", "payments", "db-0", 101, rng)
    ev["objectRef"]["subresource"] = "exec"
    ev["requestURI"] += "/exec?command=sh&stdin=true&tty=true"
    k8s.add(ts, _json(ev), {"type": "attack", "name": "k8s_exec", "entity": "bob",
                            "rules": ["k8s-exec-into-pod"]})
    for k in range(60):  # benign: a deploy burst patching deployments
        ts = t5 - timedelta(hours=1) + timedelta(seconds=k)
        k8s.add(ts, _json(_k8s_event(ts, "patch", "system:serviceaccount:web:deployer", "deployments",
                                     "web", f"svc-{k}", 200, rng)))
    # CloudTrail: logging stopped, console login without MFA.
    t6 = t0 + timedelta(hours=6)
    cloud.add(t6, _json(_trail(t6, "StopLogging", "mallory", "198.51.100.23", rng)),
              {"type": "attack", "name": "cloudtrail_stop_logging", "entity": "mallory",
               "rules": ["cloudtrail-logging-disabled"]})
    for k in range(4):  # console password guessing before the successful login below
        ts = t6 - timedelta(minutes=6) + timedelta(seconds=k * 20)
        failed = _trail(ts, "ConsoleLogin", "mallory", "198.51.100.23", rng)
        failed["responseElements"] = {"ConsoleLogin": "Failure"}
        failed["errorMessage"] = "Failed authentication"
        cloud.add(ts, _json(failed))
    login = _trail(t6 - timedelta(minutes=3), "ConsoleLogin", "mallory", "198.51.100.23", rng)
    login["responseElements"] = {"ConsoleLogin": "Success"}
    login["additionalEventData"] = {"MFAUsed": "No"}
    cloud.add(t6 - timedelta(minutes=3), _json(login),
              {"type": "attack", "name": "console_login_without_mfa", "entity": "mallory",
               "rules": ["console-login-without-mfa", "console-bruteforce-then-success"]})
    # A service account's credentials used from a new address with a new client.
    t7 = t0 + timedelta(hours=7)
    api.add(t7, _json({"@timestamp": _iso(t7), "user": "svc-etl", "src_ip": "203.0.113.77",
                       "action": "read", "method": "GET", "outcome": "success",
                       "path": "/api/v1/export", "rows": 40_000_000, "user_agent": "curl/8.4.0"}),
            {"type": "attack", "name": "service_account_new_address", "entity": "svc-etl",
             "rules": ["service-account-new-address", "service-account-new-client"]})


def _anomalies(rng: random.Random, files: dict[str, _File], day: datetime) -> None:
    """Behaviour no rule names, for the model: each labelled with the principal and its time."""
    api, cloud = files["app/api.jsonl"], files["cloud/cloudtrail.jsonl"]
    t = day + timedelta(hours=3, minutes=12)  # an analyst's night-time bulk read
    for k in range(12):
        ts = t + timedelta(seconds=k * 20)
        api.add(ts, _json({"@timestamp": _iso(ts), "user": "judy", "src_ip": ANALYST_IPS["judy"], "action": "query",
                           "method": "POST", "outcome": "success", "path": f"/api/v1/warehouse/customers/{k}",
                           "rows": 700_000, "user_agent": BROWSERS[0]}),
                {"type": "anomaly", "name": "night_bulk_read", "entity": "judy", "rules": []} if k == 0 else None)
    t = day + timedelta(hours=11, minutes=31)  # the batch job's account used interactively
    for k in range(25):
        ts = t + timedelta(seconds=k * 9)
        api.add(ts, _json({"@timestamp": _iso(ts), "user": "svc-etl", "src_ip": "10.20.2.37", "action": "read",
                           "method": "GET", "outcome": "success", "bytes": rng.randint(500, 4000),
                           "path": f"/api/v1/{rng.choice(['items', 'orders', 'reports', 'users'])}/{k}",
                           "user_agent": BROWSERS[2]}),
                {"type": "anomaly", "name": "service_account_interactive", "entity": "svc-etl",
                 "rules": ["service-account-new-address", "service-account-new-client"]} if k == 0 else None)
    t = day + timedelta(hours=16, minutes=5)  # a whole bucket downloaded
    for k in range(300):
        ts = t + timedelta(seconds=k * 2)
        ev = _trail(ts, "GetObject", "frank", "10.20.1.23", rng)
        ev["requestParameters"] = {"bucketName": "customer-exports", "key": f"part-{k:04d}.csv.gz"}
        ev["additionalEventData"] = {"bytesTransferredOut": 48_000_000}
        cloud.add(ts, _json(ev), {"type": "anomaly", "name": "mass_download", "entity": "frank", "rules": []}
                  if k == 0 else None)


# One planted value per secret kind; the tests assert none of them reaches any output.
SECRETS = {
    "aws_access_key_id": "AKIAZ7QXWK3PLM4RT2VB",
    "github_token": "ghp_" + "R7kPq2ZxV9mW4nL8sT1yB6cD3fG5hJ0aQeUu",
    "stripe_key": "sk_live_" + "51HkQ2eLr8mZp4Tx9Wv",
    "bearer_token": "mF9.k2Pq-Zx7Lw3Nb8Vc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlX3NlY3JldA",
    "url_password": "Tr0ub4dor-3",
    "password_param": "hunter2-Secr3t",
    "private_key": "MIIEowIBAAKCAQEA7Vx9QkYbPz",
}


def _violations(rng: random.Random, api: _File, t0: datetime) -> None:
    def plant(k: int, doc_or_line: Any, reason: str, secret: str | None = None) -> None:
        ts = t0 + timedelta(minutes=k)
        line = doc_or_line if isinstance(doc_or_line, str) else _json(doc_or_line)
        label: dict[str, Any] = {"type": "violation", "reason": reason}
        if secret is not None:
            label["secret_kind"] = secret
            label["secret"] = SECRETS[secret]
        api.add(ts, line, label)

    base = {"user": "erin", "src_ip": "10.20.1.11", "action": "read", "outcome": "success",
            "path": "/api/v1/items"}
    ts = lambda k: _iso(t0 + timedelta(minutes=k))  # noqa: E731
    plant(0, {**base, "@timestamp": ts(0), "user": None, "src_ip": None}, "missing_field")
    plant(1, {**base, "@timestamp": ts(1), "action": None}, "missing_field")
    plant(2, {**base, "@timestamp": "yesterday-ish"}, "bad_timestamp")
    plant(3, {**base, "@timestamp": ts(3).replace("Z", "")}, "bad_timestamp")  # no zone
    plant(4, {**base}, "bad_timestamp")  # no timestamp at all
    plant(5, '{"@timestamp": "' + ts(5) + '", "user": "erin", "action": "re', "malformed")
    plant(6, {**base, "@timestamp": ts(6), "aws_key": SECRETS["aws_access_key_id"]}, "secret", "aws_access_key_id")
    plant(7, {**base, "@timestamp": ts(7), "note": f"pushed with {SECRETS['github_token']}"}, "secret", "github_token")
    plant(8, {**base, "@timestamp": ts(8), "note": f"charge via {SECRETS['stripe_key']}"}, "secret", "stripe_key")
    bearer = f"Bearer {SECRETS['bearer_token']}"
    plant(9, {**base, "@timestamp": ts(9), "authorization": bearer}, "secret", "bearer_token")
    plant(10, {**base, "@timestamp": ts(10), "session": SECRETS["jwt"]}, "secret", "jwt")
    dsn = f"postgres://app:{SECRETS['url_password']}@db1:5432/app"
    plant(11, {**base, "@timestamp": ts(11), "dsn": dsn}, "secret", "url_password")
    plant(12, {**base, "@timestamp": ts(12), "path": f"/api/v1/login?user=erin&password={SECRETS['password_param']}"},
          "secret", "password_param")
    plant(13, {**base, "@timestamp": ts(13), "key": "-----BEGIN RSA PRIVATE KEY-----\n"
               + SECRETS["private_key"] + "\n-----END RSA PRIVATE KEY-----"}, "secret", "private_key")
    plant(14, "this is not a log line at all", "malformed")


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


def _clf(ip: str, user: str, ts: datetime, method: str, path: str, status: int, size: int, ua: str) -> str:
    return (f'{ip} - {user} [{ts.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{method} {path} HTTP/1.1" '
            f'{status} {size} "-" "{ua}"')


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


def _trail(ts: datetime, name: str, user: str, ip: str, rng: random.Random) -> dict[str, Any]:
    source = {"StopLogging": "cloudtrail", "ConsoleLogin": "signin", "GetObject": "s3",
              "ListBuckets": "s3", "DescribeInstances": "ec2"}[name]
    return {"eventVersion": "1.08", "eventTime": _iso(ts), "eventSource": f"{source}.amazonaws.com",
            "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": ip,
            "userAgent": "aws-cli/2.15.0", "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333",
                             "arn": f"arn:aws:iam::111122223333:user/{user}"},
            "requestParameters": {"bucketName": "reports", "key": "q3.csv"} if name == "GetObject" else {},
            "additionalEventData": {"bytesTransferredOut": rng.randint(2_000, 60_000)} if name == "GetObject" else {}}

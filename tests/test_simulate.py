"""The simulator: deterministic, two organisations, a benign world as noisy as the real one
(internet visitors, crawlers, scanners, controllers, CI) and plants labelled as the rules name them."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from logwarden.errors import ConfigError
from logwarden.event import Event
from logwarden.parsers import ParserOptions, build_parser
from logwarden.simulate import ACME, SECRETS, USERS, organisation, simulate
from logwarden.sources import resolve_inputs
from logwarden.standard import SourceChecker, load_profile
from logwarden.violation import Violation
from tests.conftest import NOW, SIM_END

OPTIONS = ParserOptions(now=NOW)
FORMATS = {"web/access.log": "combined", "auth/auth.log": "syslog", "app/api.jsonl": "json",
           "k8s/audit.jsonl": "k8s_audit", "cloud/cloudtrail.jsonl": "cloudtrail", "db/queries.jsonl": "json"}
CONTROLLERS = ("system:serviceaccount:kube-system:replicaset-controller",
               "system:serviceaccount:kube-system:endpointslice-controller",
               "system:serviceaccount:argocd:argocd-application-controller",
               "system:serviceaccount:monitoring:prometheus")
CRAWLER_NAMES = re.compile(r"Googlebot|bingbot|YandexBot|AhrefsBot|SemrushBot|Applebot|DuckDuckBot")
PLANT_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


@dataclass
class Day:
    out: Path
    labels: list[dict[str, Any]]
    lines: dict[str, list[str]]  # relative path -> raw lines
    events: dict[str, list[Event | None]]  # relative path -> the parsed event of each line (None: dropped)
    violations: dict[tuple[str, int], str]  # (relative path, line) -> reason

    def labelled(self, rel: str) -> dict[int, dict[str, Any]]:
        return {lb["line"]: lb for lb in self.labels if lb["source"] == str(self.out / rel)}

    def docs(self, rel: str) -> list[dict[str, Any]]:
        out = []
        for line in self.lines[rel]:
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                out.append({})
        return out


def _load(out: Path) -> Day:
    labels = [orjson.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    lines: dict[str, list[str]] = {}
    events: dict[str, list[Event | None]] = {}
    violations: dict[tuple[str, int], str] = {}
    paths = [str(out / rel) for rel in FORMATS]
    for path, fmt in resolve_inputs(paths, None, OPTIONS):
        rel = str(Path(path).relative_to(out))
        assert fmt == FORMATS[rel], f"{rel} detected as {fmt}"
        checker = SourceChecker(load_profile(), build_parser(fmt, OPTIONS), path,
                                now=lambda: SIM_END + timedelta(hours=1))
        lines[rel] = Path(path).read_text().splitlines()
        parsed: list[Event | None] = [None] * len(lines[rel])
        for item in checker.check_lines(lines[rel], 1):
            if isinstance(item, Violation):
                violations[(rel, item.line)] = item.reason
            elif isinstance(item, Event):  # not the standard's own alerts
                parsed[item.line - 1] = item
        events[rel] = parsed
    return Day(out, labels, lines, events, violations)


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Day:
    out = tmp_path_factory.mktemp("acme")
    simulate(out, days=1, seed=3, end=SIM_END)
    return _load(out)


@pytest.fixture(scope="module")
def globex(tmp_path_factory: pytest.TempPathFactory) -> Day:
    out = tmp_path_factory.mktemp("globex")
    simulate(out, days=1, seed=3, end=SIM_END, org="globex")
    return _load(out)


def _internal(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_private


def test_same_seed_same_files_and_another_seed_other_files(acme: Day, tmp_path: Path) -> None:
    again = tmp_path / "again"
    written = simulate(again, days=1, seed=3, end=SIM_END)
    assert {p.relative_to(again) for p in written} == {Path(rel) for rel in FORMATS} | {Path("labels.jsonl")}
    for rel in FORMATS:
        assert (again / rel).read_bytes() == (acme.out / rel).read_bytes(), rel
    assert (again / "labels.jsonl").read_text().replace(str(again), str(acme.out)) == \
        (acme.out / "labels.jsonl").read_text()
    other = tmp_path / "other"
    simulate(other, days=1, seed=4, end=SIM_END)
    assert (other / "web/access.log").read_bytes() != (acme.out / "web/access.log").read_bytes()


def test_a_day_stays_within_its_volume(acme: Day) -> None:
    total = sum(len(lines) for lines in acme.lines.values())
    assert 15_000 <= total <= 25_000, total


def test_acme_keeps_its_principals(acme: Day) -> None:
    assert organisation("acme") is ACME and organisation(" ACME ") is ACME
    assert list(ACME.users) == USERS == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
                                         "ivan", "judy"]
    assert ACME.admins == ("alice", "dave") and ACME.analysts == ("judy", "ivan") and ACME.intruder == "mallory"
    assert ACME.svc_etl == "svc-etl" and ACME.k8s_runner == "system:serviceaccount:ci:runner"
    people = {d["user"] for rel in ("app/api.jsonl", "db/queries.jsonl") for d in acme.docs(rel)
              if d.get("user") and not d["user"].startswith("svc-")}
    assert people == set(USERS)
    entities = {lb["name"]: lb["entity"] for lb in acme.labels if lb["type"] != "violation"}
    assert entities["read_shadow"] == "mallory" and entities["k8s_exec"] == "bob"
    assert entities["night_bulk_read"] == "judy" and entities["mass_download"] == "frank"
    assert entities["service_account_new_address"] == entities["service_account_interactive"] == "svc-etl"
    assert {d.get("user") for d in acme.docs("app/api.jsonl")} >= {"svc-ci", "svc-deploy", "svc-etl"}


def test_another_organisation_shares_no_principal_or_network_with_acme(acme: Day, globex: Day) -> None:
    org = organisation("globex")
    assert organisation("globex") == org != organisation("initech")
    names = [*org.users, org.intruder]
    assert len(set(names)) == len(names) == 11 and all(n.isalpha() and n.islower() for n in names)
    assert not set(names) & {*USERS, "mallory"}
    assert {org.svc_etl, org.svc_ci, org.svc_deploy, org.k8s_runner, org.k8s_deployer}.isdisjoint(
        {ACME.svc_etl, ACME.svc_ci, ACME.svc_deploy, ACME.k8s_runner, ACME.k8s_deployer})
    acme_nets = {ipaddress.ip_network(f"{ip}/16", strict=False) for ip in (*ACME.office_ips, *ACME.vpn_ips.values())}
    assert not any(ipaddress.ip_address(ip) in net for net in acme_nets
                   for ip in (*org.office_ips, *org.vpn_ips.values()))
    # Its files name its people, never acme's.
    users = {d.get("user") for rel in ("app/api.jsonl", "db/queries.jsonl") for d in globex.docs(rel)}
    users |= {(e.user_name or "") for rel in ("auth/auth.log", "k8s/audit.jsonl", "cloud/cloudtrail.jsonl")
              for e in globex.events[rel] if e is not None}
    assert not users & {*USERS, "mallory", "svc-etl", "svc-ci", "svc-deploy", "system:serviceaccount:ci:runner"}
    assert {*org.users, org.intruder, org.svc_etl, org.svc_ci, org.svc_deploy} <= users
    # The same structure of plants and labels, naming its own entities.
    shape = lambda day: sorted((lb["type"], lb.get("name", lb.get("reason")), tuple(lb.get("rules", ())),  # noqa: E731
                                Path(lb["source"]).relative_to(day.out).as_posix()) for lb in day.labels)
    assert shape(globex) == shape(acme)
    entities = {lb["name"]: lb["entity"] for lb in globex.labels if lb["type"] != "violation"}
    assert entities["read_shadow"] == org.intruder and entities["k8s_exec"] == org.users[1]
    assert entities["k8s_secrets_enumeration"] == org.k8s_runner
    with pytest.raises(ConfigError, match="organisation name"):
        organisation("not a name!")


def test_the_web_server_sees_the_internet(acme: Day) -> None:
    events = [e for e in acme.events["web/access.log"] if e is not None]
    clients = {e.source_ip for e in events if e.source_ip and not _internal(e.source_ip)}
    assert len(clients) >= 2000
    for ip in clients:
        addr = ipaddress.ip_address(ip)
        assert addr.is_global or any(addr in net for net in PLANT_NETS), ip
    agents = {e.user_agent for e in events if e.user_agent}
    assert len({m.group(0) for ua in agents if (m := CRAWLER_NAMES.search(ua))}) >= 5
    assert sum("Mobile" in ua for ua in agents) >= 5 and sum("Windows NT" in ua for ua in agents) >= 5
    assert any("zgrab" in ua for ua in agents) and any("CensysInspect" in ua for ua in agents)
    statuses = Counter(e.status_code for e in events)
    assert statuses[304] > 100 and statuses[301] > 10 and statuses[404] > 50
    assert {"/favicon.ico", "/robots.txt", "/sitemap.xml", "/wp-login.php", "/.env"} <= {e.url_path for e in events}
    per_client = Counter(e.source_ip for e in events)
    assert sum(1 for ip in clients if per_client[ip] >= 10) >= 100  # some browse
    assert sum(1 for ip in clients if per_client[ip] <= 5) >= 1500  # most glance
    hours = Counter(e.timestamp.hour for e in events if e.source_ip in clients)
    assert min(hours.values()) > 100 and max(hours.values()) > 2 * min(hours.values())  # day and night, diurnal


def test_crawlers_stay_below_the_scanners_thresholds(acme: Day) -> None:
    missing: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    crawlers: dict[str, set[str]] = defaultdict(set)
    for e in acme.events["web/access.log"]:
        if e is not None and e.user_agent and CRAWLER_NAMES.search(e.user_agent):
            crawlers[CRAWLER_NAMES.search(e.user_agent).group(0)].add(e.source_ip)  # type: ignore[union-attr]
            if e.status_code == 404:
                missing[e.source_ip].append((e.timestamp, e.url_path))
    assert len(crawlers) == 7 and all(len(ips) >= 3 for ips in crawlers.values())
    assert missing  # they do find some old pages gone
    for ip, hits in missing.items():
        for t, _ in hits:
            window = [p for u, p in hits if t <= u < t + timedelta(minutes=5)]
            assert len(window) < 20 and len(set(window)) < 40, ip
    probes = Counter(e.source_ip for e in acme.events["web/access.log"]
                     if e is not None and e.user_agent and re.search("zgrab|masscan|Censys|Expanse", e.user_agent))
    assert probes and max(probes.values()) <= 6  # 1-3 requests, once or twice a day


def test_ssh_background_from_the_internet_never_gets_in(acme: Day) -> None:
    events = [e for e in acme.events["auth/auth.log"] if e is not None]
    assert all(e.action not in (None, "sshd") for e in events if "sshd[" in acme.lines["auth/auth.log"][e.line - 1]
               and "Disconnecting:" not in acme.lines["auth/auth.log"][e.line - 1])
    external = {e.source_ip for e in events if e.source_ip and not _internal(e.source_ip)
                and not any(ipaddress.ip_address(e.source_ip) in net for net in PLANT_NETS)}
    assert len(external) >= 20
    assert not [e for e in events if e.source_ip in external and e.outcome == "success"]
    root_failures = Counter(e.source_ip for e in events if e.source_ip in external and e.action == "ssh_login"
                            and e.user_name == "root")
    assert 2 <= sum(n >= 20 for n in root_failures.values()) <= 4  # the persistent ones
    invalid = {e.user_name for e in events if e.source_ip in external and e.action == "ssh_invalid_user"}
    assert len(invalid) >= 5 and not invalid & set(USERS)
    # The on-call admin's night login and commands.
    night = [e for e in events if e.timestamp.hour < 6 and e.source_ip in ACME.vpn_ips.values()]
    assert any(e.action == "ssh_login" and e.outcome == "success" for e in night)
    assert any(e.action == "sudo_command" and e.timestamp.hour < 6 and e.user_name in ACME.admins for e in events)


def test_kubernetes_accounts_move_pods_and_engineers_work_where_they_usually_do(acme: Day) -> None:
    docs = [d for d, lineno in zip(acme.docs("k8s/audit.jsonl"), range(1, 10**6), strict=False)
            if lineno not in acme.labelled("k8s/audit.jsonl")]
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        by_user[d["user"]["username"]].append(d)
    for account in (*CONTROLLERS, ACME.k8s_runner):
        routine = [d for d in by_user[account] if d["sourceIPs"][0].startswith("10.244.")]
        pods = {d["sourceIPs"][0] for d in routine}
        assert len(pods) >= 5 and all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.0.0/16")
                                      for ip in pods), account
        assert len({d["userAgent"] for d in routine}) == 1, account
        hours = {datetime.fromisoformat(d["requestReceivedTimestamp"]).hour for d in routine}
        assert len(hours) == 24, account  # day and night
    runner_secrets = sorted(datetime.fromisoformat(d["requestReceivedTimestamp"]) for d in by_user[ACME.k8s_runner]
                            if d["objectRef"]["resource"] == "secrets" and d["objectRef"]["namespace"] == "ci")
    assert runner_secrets and all(sum(t <= u < t + timedelta(minutes=5) for u in runner_secrets) <= 5
                                  for t in runner_secrets)
    patches = [d for d in by_user[ACME.k8s_runner] if d["verb"] in ("patch", "update")]
    assert patches and {d["objectRef"]["namespace"] for d in patches} <= {"web", "api"}
    execs = [d for u in ACME.engineers for d in by_user[u] if d["objectRef"].get("subresource") == "exec"]
    assert len(execs) >= 3 and {d["objectRef"]["namespace"] for d in execs} <= {"web", "api", "staging"}
    for u in ACME.engineers:
        assert len({d["objectRef"]["namespace"] for d in by_user[u]
                    if d["objectRef"].get("subresource") == "exec"}) <= 2
    subresources = {d["objectRef"].get("subresource") for u in ACME.engineers for d in by_user[u]}
    assert {"exec", "portforward", "log"} <= subresources
    night_logs = [d for u in ACME.admins for d in by_user[u] if d["objectRef"].get("subresource") == "log"
                  and datetime.fromisoformat(d["requestReceivedTimestamp"]).hour < 6]
    assert night_logs and {d["sourceIPs"][0] for d in night_logs} <= set(ACME.vpn_ips.values())


def test_ci_and_deploy_accounts_call_the_api_from_fresh_runner_addresses(acme: Day) -> None:
    docs = acme.docs("app/api.jsonl")
    for account in ("svc-ci", "svc-deploy"):
        mine = [d for d in docs if d.get("user") == account]
        ips = {d["src_ip"] for d in mine}
        assert len(ips) >= 4 and all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.30.0.0/16") for ip in ips)
        assert len({d["user_agent"] for d in mine}) == 1
    etl = [d for d in docs if d.get("user") == "svc-etl" and d.get("src_ip") == "10.30.0.5"]
    assert len(etl) == 4  # the nightly batch job, as it was


def test_every_line_parses_and_only_labelled_lines_violate(acme: Day, globex: Day) -> None:
    for day in (acme, globex):
        labelled = {(Path(lb["source"]).relative_to(day.out).as_posix(), lb["line"]): lb["reason"]
                    for lb in day.labels if lb["type"] == "violation"}
        userless = {key for key in labelled if key[0] == "db/queries.jsonl"}
        # Whether a JSON line without a user violates depends on the profile; nothing else may.
        assert set(day.violations.items()) <= set(labelled.items())
        assert set(labelled) - set(day.violations) <= userless
        for rel, parsed in day.events.items():
            for lineno, event in enumerate(parsed, 1):
                if (rel, lineno) in labelled:
                    continue
                assert event is not None and event.action and event.timestamp, (rel, lineno)
                if FORMATS[rel] in ("json", "k8s_audit", "cloudtrail"):
                    assert event.user_name, (rel, lineno)  # routine lines always name their user
        secrets = [lb for lb in day.labels if "secret" in lb]
        assert {lb["secret_kind"] for lb in secrets} == set(SECRETS)


def test_three_database_queries_without_a_user_are_labelled(acme: Day) -> None:
    docs = acme.docs("db/queries.jsonl")
    labelled = acme.labelled("db/queries.jsonl")
    userless = [n for n, d in enumerate(docs, 1) if "user" not in d]
    assert len(userless) == 3 and set(userless) == set(labelled)
    for n in userless:
        assert labelled[n]["type"] == "violation" and labelled[n]["reason"] == "missing_field"
        assert docs[n - 1]["src_ip"] and docs[n - 1]["action"] == "query"
    assert {d["user"] for d in docs if "user" in d} >= {*ACME.analysts, "svc-etl", "bob"}
    assert all(d["statement"] and d["db"] and d["table"] for d in docs)


def test_plants_are_labelled_with_the_rules_that_name_them(acme: Day) -> None:
    rules = {lb["name"]: lb["rules"] for lb in acme.labels if lb["type"] != "violation"}
    assert rules["password_spray"] == ["password-spray", "ssh-bruteforce"]  # real accounts guessed
    assert rules["ssh_bruteforce"] == ["ssh-bruteforce-then-success"]
    assert rules["service_account_interactive"] == ["service-account-new-client"]
    assert rules["k8s_exec"] == ["k8s-exec-sensitive-namespace"]
    assert rules["service_account_new_address"] == ["service-account-new-address", "service-account-new-client"]
    spray = [line for line in acme.lines["auth/auth.log"] if "from 198.51.100.77 " in line]
    assert len(spray) == 15
    for user in USERS:
        assert sum(f"Failed password for {user} from" in line for line in spray) == 1
    for user in ("admin", "oracle", "test", "ubuntu", "postgres"):
        assert sum(f"Failed password for invalid user {user} from" in line for line in spray) == 1
    brute = [line for line in acme.lines["auth/auth.log"] if "from 203.0.113.50 " in line]
    assert sum("Failed password for root" in line for line in brute) == 40 and "Accepted password" in brute[-1]
    exec_line = acme.docs("k8s/audit.jsonl")[next(n for n, lb in acme.labelled("k8s/audit.jsonl").items()
                                                  if lb["name"] == "k8s_exec") - 1]
    assert exec_line["user"]["username"] == "bob" and exec_line["objectRef"]["namespace"] == "payments"
    assert exec_line["objectRef"]["subresource"] == "exec"

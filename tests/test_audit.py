"""The audit trail: tamper evidence (property tests), crash repair, encryption, evidence bundles,
retention with legal holds, and the selftest and check commands' exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logwarden.audit.retention import Hold, apply, plan
from logwarden.audit.trail import AuditTrail, Cipher, segments
from logwarden.audit.verify import verify

KEY = b"k" * 32
ROOT = Path(__file__).resolve().parents[1]


def build(root: Path, n: int = 23, per_segment: int = 5, cipher: Cipher | None = None) -> AuditTrail:
    trail = AuditTrail(root, "decisions", KEY, segment_records=per_segment, cipher=cipher, fsync="never")
    for i in range(n):
        trail.append([("alert", f"2026-11-{1 + i // 10:02d}T10:00:{i % 60:02d}Z", {"n": i, "rule_id": "r",
                                                                                  "entity": f"e{i % 3}"})])
    trail.seal()
    return trail


def lines_of(root: Path) -> list[tuple[Path, list[bytes]]]:
    return [(p, p.read_bytes().split(b"\n")[:-1]) for p in segments(root / "decisions")]


def test_clean_archive_verifies_with_a_summary(tmp_path: Path) -> None:
    build(tmp_path)
    report = verify(tmp_path, KEY)
    assert report.ok
    assert report.lines()[0].startswith("decisions: OK: 5 segment(s), 23 record(s), 2026-11-01")
    assert oct(os.stat(tmp_path / "decisions").st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in segments(tmp_path / "decisions"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_fails_and_names_the_place(tmp_path_factory: pytest.TempPathFactory,
                                                         data: st.DataObject) -> None:
    root = tmp_path_factory.mktemp("a")
    build(root)
    files = [*segments(root / "decisions"), root / "decisions" / "HEAD"]
    target = data.draw(st.sampled_from(files))
    raw = bytearray(target.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    raw[pos] = new
    target.write_bytes(bytes(raw))
    report = verify(root, KEY)
    assert not report.ok
    problems = " ".join(report.classes[0].problems)
    assert target.name in problems or (target.name == "HEAD" and "HEAD" in problems) or "missing" in problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), op=st.sampled_from(["delete", "insert", "swap", "truncate", "remove_segment"]))
def test_deleted_inserted_reordered_truncated_or_removed_records_fail(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, op: str) -> None:
    root = tmp_path_factory.mktemp("b")
    build(root)
    segs = lines_of(root)
    path, lines = data.draw(st.sampled_from(segs))
    if op == "delete":
        del lines[data.draw(st.integers(0, len(lines) - 1))]
    elif op == "insert":
        _, other = data.draw(st.sampled_from(segs))
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(other)))
    elif op == "swap":
        i = data.draw(st.integers(0, len(lines) - 2))
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif op == "truncate":
        lines = lines[: data.draw(st.integers(0, len(lines) - 1))]
    if op == "remove_segment":
        path.unlink()
    else:
        path.write_bytes(b"".join(ln + b"\n" for ln in lines))
    report = verify(root, KEY)
    assert not report.ok, op
    assert path.name in " ".join(report.classes[0].problems) or "missing" in " ".join(report.classes[0].problems)


@pytest.mark.parametrize("pos", range(0, 40))
def test_every_byte_of_head_is_covered(tmp_path: Path, pos: int) -> None:
    """Found by the property test above: a changed byte in HEAD's field names went unnoticed."""
    build(tmp_path)
    head = tmp_path / "decisions" / "HEAD"
    raw = bytearray(head.read_bytes())
    raw[pos] = 32 if raw[pos] != 32 else 33
    head.write_bytes(bytes(raw))
    assert not verify(tmp_path, KEY).ok


def test_every_byte_of_a_small_archive_is_covered(tmp_path: Path) -> None:
    build(tmp_path, n=3, per_segment=10)
    seg = segments(tmp_path / "decisions")[0]
    original = seg.read_bytes()
    for pos in range(len(original)):
        raw = bytearray(original)
        raw[pos] = (raw[pos] + 1) % 256
        seg.write_bytes(bytes(raw))
        assert not verify(tmp_path, KEY).ok, pos
    seg.write_bytes(original)
    assert verify(tmp_path, KEY).ok


def test_a_chain_rebuilt_without_the_key_fails(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "other", "decisions", b"x" * 32, fsync="never")  # rebuilt with another key
    trail.append([("alert", "2026-11-01T10:00:00Z", {"n": 0})])
    report = verify(tmp_path / "other", KEY)
    assert not report.ok and "authentication failed" in " ".join(report.lines())


def test_a_crash_mid_write_is_detected_then_repaired_by_sealing(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path, "decisions", KEY, segment_records=100, fsync="never")
    trail.append([("alert", None, {"n": 1}), ("alert", None, {"n": 2})])
    active = segments(tmp_path / "decisions")[-1]
    with open(active, "ab") as f:
        f.write(b'{"at":"2026-11-26T10:00:00Z","data":{"n":3},"ha')  # the process died here
    report = verify(tmp_path, KEY)
    assert not report.ok and "torn tail of" in " ".join(report.lines())
    note = AuditTrail(tmp_path, "decisions", KEY, fsync="never").repair()
    assert note is not None and "moved to" in note
    trail.append([("alert", None, {"n": 4})])
    assert verify(tmp_path, KEY).ok
    assert active.with_suffix(".torn").read_bytes().startswith(b'{"at"')


class CountingCipher(Cipher):
    """Counts the records it opens: what writers read back of the trail."""

    opened = 0

    def open(self, data: Any, seq: int) -> Any:
        self.opened += 1
        return super().open(data, seq)


def test_a_writer_never_reads_back_its_own_records(tmp_path: Path) -> None:
    cipher = CountingCipher(bytes(range(32)))
    trail = AuditTrail(tmp_path, "events", KEY, fsync="never", cipher=cipher)
    for i in range(300):  # a long-running flow appending batch after batch to one big segment
        trail.append([("event", None, {"log.file.path": f"/logs/{i % 3}.log", "i": i})])
    assert cipher.opened == 0  # each append cost its own record, not the segment's again
    other = AuditTrail(tmp_path, "events", KEY, fsync="never", cipher=cipher)
    other.append([("event", None, {"log.file.path": "/logs/x.log"})])  # a second process reads once
    trail.append([("event", None, {"log.file.path": "/logs/0.log"})])
    assert cipher.opened == 301
    trail.seal()
    assert verify(tmp_path, KEY).ok


def test_a_segment_copied_back_in_place_is_read_again(tmp_path: Path) -> None:
    """An operator restores the open segment from a copy with ``cp`` (the same file, other
    content): the writer does not go on from what it remembered, but from what the file holds."""
    trail = AuditTrail(tmp_path, "decisions", KEY, fsync="never")
    trail.append([("alert", None, {"n": 1}), ("alert", None, {"n": 2})])
    active, head = segments(tmp_path / "decisions")[-1], tmp_path / "decisions" / "HEAD"
    older, older_head = active.read_bytes(), head.read_bytes()
    other = AuditTrail(tmp_path / "other", "decisions", KEY, fsync="never")
    other.append([("alert", None, {"n": n, "note": "x" * 40}) for n in range(4)])
    longer, longer_head = segments(other.dir)[-1].read_bytes(), (other.dir / "HEAD").read_bytes()
    trail.append([("alert", None, {"n": 3})])
    for content, content_head, seqs in ((older, older_head, [1, 2, 3]), (longer, longer_head, [1, 2, 3, 4, 5])):
        with open(active, "r+b") as f:  # in place: the same inode, shorter, then longer with other lines
            f.truncate(0)
            f.write(content)
        head.write_bytes(content_head)
        trail.append([("alert", None, {"n": 9})])
        assert [orjson.loads(line)["seq"] for line in active.read_bytes().splitlines()] == seqs
        assert verify(tmp_path, KEY).ok  # the chain goes on from the file's last record


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.sampled_from(["/a.log", "/b.log", None])),
                      min_size=1, max_size=30))
def test_writers_taking_turns_keep_one_chain_and_true_seals(tmp_path_factory: pytest.TempPathFactory,
                                                            turns: list[tuple[int, int, str | None]]) -> None:
    """Three writers (the flow, an incident command, a retention run) appending in turn, one of
    them repairing a torn tail first: each reads what the others appended, so the chain goes on
    unbroken and every seal counts its segment's records, times and sources exactly."""
    root = tmp_path_factory.mktemp("turns")
    cipher = CountingCipher(bytes(range(32)))
    writers = [AuditTrail(root, "events", KEY, segment_records=5, fsync="never", cipher=cipher) for _ in range(3)]
    written = repairs = 0
    for who, n, source in turns:
        if who == 2 and written:  # the last one died mid-write: the next run repairs
            with open(segments(root / "events")[-1], "ab") as f:
                f.write(b'{"at":"2026-11-26T10:00:00Z","da')
            assert writers[2].repair() is not None
            repairs += 1
        writers[who].append([("event", f"2026-11-01T{10 + (written + k) // 60:02d}:{(written + k) % 60:02d}:00Z",
                              {"log.file.path": source} if source else {"k": k}) for k in range(n)])
        written += n
    writers[0].seal()
    assert verify(root, KEY).ok
    plain = Cipher(bytes(range(32)))
    for path in segments(root / "events"):
        recs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        body = [r for r in recs if r["kind"] != "seal"]
        assert recs[-1]["kind"] == "seal" and body
        sources: dict[str, str] = {}
        for r in body:
            if (src := plain.open(r["data"], r["seq"]).get("log.file.path")) is not None:
                sources[src] = max(sources.get(src, r["at"]), r["at"])
        assert recs[-1]["data"] == {"segment": path.name, "records": len(body), "first_seq": body[0]["seq"],
                                    "last_seq": body[-1]["seq"], "first_at": min(r["at"] for r in body),
                                    "last_at": max(r["at"] for r in body), "sources": sources}
    assert cipher.opened <= 2 * (written + repairs)  # each record read at most once by each other writer


def test_encryption_at_rest(tmp_path: Path) -> None:
    cipher = Cipher(bytes(range(32)))
    build(tmp_path, n=6, cipher=cipher)
    raw = b"".join(p.read_bytes() for p in segments(tmp_path / "decisions"))
    assert b'"entity"' not in raw and b'"enc"' in raw
    assert verify(tmp_path, KEY).ok
    first = orjson.loads(segments(tmp_path / "decisions")[0].read_bytes().split(b"\n")[0])
    assert cipher.open(first["data"], first["seq"])["n"] == 0
    with pytest.raises(Exception):  # noqa: B017 - any tampering of the ciphertext is refused
        cipher.open({"enc": first["data"]["enc"][:-4] + "AAAA"}, first["seq"])


def test_retention_purges_expired_segments_and_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    trail = build(tmp_path, n=23)
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)  # records of Nov 1-3; keep one day
    p = plan(trail, timedelta(days=1), [], now)
    assert [s.name for s in p.purge] == ["seg-000001.jsonl", "seg-000002.jsonl", "seg-000003.jsonl",
                                         "seg-000004.jsonl"]
    apply(trail, p, "tester", "retention 1 day")
    assert [s.name for s in segments(tmp_path / "decisions")] == ["seg-000005.jsonl", "seg-000006.jsonl"]
    report = verify(tmp_path, KEY)
    assert report.ok, report.lines()
    # removing a segment without a purge record is still caught
    segments(tmp_path / "decisions")[0].unlink()
    assert not verify(tmp_path, KEY).ok


def test_legal_hold_blocks_purge(tmp_path: Path) -> None:
    trail = build(tmp_path, n=23)
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    hold = Hold.parse("2026-11-01T10:00:06Z..2026-11-01T10:00:07Z")  # inside segment 2
    p = plan(trail, timedelta(days=1), [hold], now)
    assert [s.name for s in p.purge] == ["seg-000001.jsonl"] and p.held[0].name == "seg-000002.jsonl"
    assert plan(trail, timedelta(days=1), [Hold.parse("all")], now).purge == []
    with pytest.raises(Exception, match="legal hold"):
        Hold.parse("last week")


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logwarden.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **(env or {})}, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = _cli("demo", "--out", str(out), env={"LOGWARDEN_AUDIT_DIR": "", "LOGWARDEN_AUDIT_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    return out


def _audit_env(demo: Path) -> dict[str, str]:
    return {"LOGWARDEN_AUDIT_DIR": str(demo / "audit"), "LOGWARDEN_AUDIT_KEY": (demo / "audit.key").read_text()}


def test_demo_trail_verifies_and_fails_when_touched(demo: Path, tmp_path: Path) -> None:
    ok = _cli("audit", "verify", env=_audit_env(demo))
    assert ok.returncode == 0 and "decisions: OK" in ok.stdout and "events: OK" in ok.stdout
    copy = tmp_path / "audit"
    import shutil

    shutil.copytree(demo / "audit", copy)
    seg = segments(copy / "decisions")[0]
    seg.write_bytes(seg.read_bytes().replace(b'"severity":"high"', b'"severity":"low!"', 1))
    bad = _cli("audit", "verify", str(copy), env=_audit_env(demo))
    assert bad.returncode == 1 and "seg-000001.jsonl line" in bad.stdout


@pytest.mark.parametrize("out_name", ["bundle", "bundle.zip"])
def test_evidence_bundle_checks_with_standard_tools(demo: Path, tmp_path: Path, out_name: str) -> None:
    out = tmp_path / out_name
    done = _cli("evidence", "--from", "2026-01-01T00:00:00Z", "--to", "2030-01-01T00:00:00Z",
                "--entity", "203.0.113.50", "--out", str(out), env=_audit_env(demo))
    assert done.returncode == 0, done.stderr
    bundle = out
    if out.suffix == ".zip":
        bundle = tmp_path / "unzipped"
        zipfile.ZipFile(out).extractall(bundle)
    assert (bundle / "README.md").exists() and (bundle / "rules" / "default.yaml").exists()
    assert (bundle / "rules" / "default.card.json").exists()  # the model card in force
    sha = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=bundle, capture_output=True, text=True,
                         check=False)
    assert sha.returncode == 0, sha.stdout + sha.stderr
    chain = subprocess.run([sys.executable, "-I", "verify_chain.py", "."], cwd=bundle, capture_output=True,
                           text=True, check=False)
    assert chain.returncode == 0 and chain.stdout.strip().endswith("segment(s) checked")
    records = [orjson.loads(x) for x in (bundle / "records" / "decisions.jsonl").read_text().splitlines()]
    assert records and all("203.0.113.50" in orjson.dumps(r["data"]).decode() for r in records)
    # a changed byte in the bundle fails both checks
    target = bundle / "records" / "decisions.jsonl"
    target.write_text(target.read_text().replace("203.0.113.50", "203.0.113.51", 1))
    assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=bundle, capture_output=True,
                          check=False).returncode == 1
    assert subprocess.run([sys.executable, "-I", "verify_chain.py", "."], cwd=bundle, capture_output=True,
                          check=False).returncode == 1
    verified = _cli("audit", "verify", env=_audit_env(demo))
    assert verified.returncode == 0  # the export itself was recorded, and the chain still verifies
    assert b'"command":"evidence"' in b"".join(p.read_bytes() for p in segments(demo / "audit" / "decisions"))


def test_selftest_passes_on_the_pack_and_fails_on_a_broken_rule(tmp_path: Path) -> None:
    ok = _cli("selftest")
    assert ok.returncode == 0 and "pci-dss-4.0:10.2.1.4" in ok.stdout and "FAIL" not in ok.stdout
    local = tmp_path / "local.yaml"
    local.write_text("overrides:\n  - {id: ssh-bruteforce, count: 500}\n")  # can no longer fire on its canary
    broken = _cli("selftest", env={"LOGWARDEN_RULES": orjson.dumps([str(ROOT / "rules" / "default.yaml"),
                                                                     str(local)]).decode()})
    assert broken.returncode == 1 and "attack:T1110.001" in broken.stdout and "silent: ssh-bruteforce" in broken.stdout


def test_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("".join(orjson.dumps({"@timestamp": f"2026-11-25T10:00:{k:02d}Z", "user": "a", "action": "read",
                                          "outcome": "success"}).decode() + "\n" for k in range(20)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"@timestamp": "2026-11-25T10:01:00Z", "action": "read"}\n')
    assert _cli("check", "--input", str(good)).returncode == 0
    failing = _cli("check", "--input", str(bad))
    assert failing.returncode == 1 and "FAIL" in failing.stderr and "95.24%" in failing.stderr
    assert _cli("check", "--input", str(bad), "--min-compliance", "0.9").returncode == 0


def test_retention_per_source(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path, "events", KEY, segment_records=4, fsync="never")
    for day, source in ((1, "/logs/web.log"), (1, "/logs/pci/card.log"), (2, "/logs/web.log"), (3, "/logs/web.log")):
        trail.append([("event", f"2026-11-{day:02d}T10:00:0{k}Z", {"log.file.path": source, "k": k})
                      for k in range(4)])
    trail.seal()
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    everything = plan(trail, timedelta(days=1), [], now)
    assert [s.name for s in everything.purge] == ["seg-000001.jsonl", "seg-000002.jsonl", "seg-000003.jsonl"]
    pci_kept = plan(trail, timedelta(days=1), [], now, {"*/pci/*": timedelta(days=400)})
    assert [s.name for s in pci_kept.purge] == ["seg-000001.jsonl"]  # segment 2 holds card.log: kept
    apply(trail, pci_kept, "tester", "retention")
    assert verify(tmp_path, KEY).ok


def test_a_record_written_before_two_crashes_is_not_written_again(tmp_path: Path) -> None:
    """Run 1 writes A after its snapshot and dies. Run 2 (resumed) has not emitted A again by its
    own snapshot and dies too. Run 3 resumes from run 2's snapshot and emits A: the trail must
    still hold A once, so what run 2 still owed travels in its snapshot."""
    from logwarden.sinks import TrailSink
    from logwarden.violation import Violation

    def v(n: int) -> Violation:
        return Violation(source="api.log", line=n, reason="malformed", detail="d", action="dropped", excerpt="x")

    trail = AuditTrail(tmp_path, "decisions", KEY, fsync="never")
    sink = TrailSink(trail, "audit")
    run1 = sink.build_part("s", "out", None)
    run1.write_batch([v(1)])
    snap1 = run1.snapshot()
    run1.write_batch([v(2)])  # then kill -9
    run2 = sink.build_part("s", "out", snap1)
    run2.write_batch([v(3)])  # the replay has not reached line 2 yet
    snap2 = run2.snapshot()
    assert snap2[1], "line 2 is still owed at run 2's snapshot"
    run3 = sink.build_part("s", "out", snap2)
    run3.write_batch([v(2), v(4)])
    assert run3.snapshot()[1] == []  # nothing owed any more
    lines = [d["line"] for kind, d in trail.records_after(0) if kind == "violation"]
    assert sorted(lines) == [1, 2, 3, 4]
    # A snapshot from before this change (the position alone) still resumes.
    run4 = sink.build_part("s", "out", snap1[0])
    run4.write_batch([v(2), v(3), v(5)])
    assert sorted(d["line"] for kind, d in trail.records_after(0) if kind == "violation") == [1, 2, 3, 4, 5]


def test_a_sink_killed_before_its_first_snapshot_writes_nothing_twice(tmp_path: Path) -> None:
    """Bytewax snapshots a sink only after an epoch in which it wrote. Runs 1-3 of a recovery
    directory write nothing; run 4 writes its first records and dies before any snapshot; run 5
    resumes with no snapshot for the sink and emits them again: the trail holds them once. A new
    recovery directory (a new lineage) writes what it gets, even what an older lineage wrote."""
    from logwarden.audit.setup import Trails, mark_lineage
    from logwarden.sinks import TrailSink
    from logwarden.violation import Violation

    def v(n: int) -> Violation:
        return Violation(source="api.log", line=n, reason="malformed", detail="d", action="dropped", excerpt="x")

    trail = AuditTrail(tmp_path / "audit", "decisions", KEY, fsync="never")
    trail.append([("violation", None, v(0).to_dict())])  # before this recovery directory
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    mark_lineage(recovery, Trails(trail, None, tmp_path / "audit", KEY, None))
    sink = TrailSink(trail, "audit", recovery)
    run4 = sink.build_part("s", "out", None)
    run4.write_batch([v(1), v(2)])  # then kill -9, before the epoch's snapshot
    run5 = sink.build_part("s", "out", None)
    run5.write_batch([v(1)])
    assert run5.snapshot()[1], "line 2 is still owed"
    run5.write_batch([v(2), v(3)])
    assert sorted(d["line"] for kind, d in trail.records_after(0) if kind == "violation") == [0, 1, 2, 3]
    fresh = tmp_path / "recovery2"
    fresh.mkdir()
    mark_lineage(fresh, Trails(trail, None, tmp_path / "audit", KEY, None))
    TrailSink(trail, "audit", fresh).build_part("s", "out", None).write_batch([v(1)])
    assert sorted(d["line"] for kind, d in trail.records_after(0) if kind == "violation") == [0, 1, 1, 2, 3]


def _busy_trail(root: Path, cipher: Cipher | None = None) -> AuditTrail:
    """Three days of events (a record every 5 min per user) in segments of 40, and some alerts."""
    import random

    rng = random.Random(4)
    events = AuditTrail(root, "events", KEY, segment_records=40, cipher=cipher, fsync="never")
    decisions = AuditTrail(root, "decisions", KEY, segment_records=40, cipher=cipher, fsync="never")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    users = ["alice", "bob", "carol", "mallory"]
    for minute in range(0, 3 * 24 * 60, 5):
        at = start + timedelta(minutes=minute)
        user = users[(minute // 5) % 4]
        source = "/var/log/payments/api.jsonl" if user in ("alice", "mallory") else "/var/log/web/access.log"
        events.append([("event", at.isoformat().replace("+00:00", "Z"), {
            "user.name": user, "source.ip": f"10.0.0.{rng.randint(1, 9)}", "log.file.path": source,
            "event.action": rng.choice(["read", "write", "login"]), "event.outcome": rng.choice(["success", "failure"]),
            "resource": rng.choice(["billing/cards", "billing/invoices", "www/index"])})])
        if minute % 360 == 0:
            decisions.append([("alert", at.isoformat().replace("+00:00", "Z"), {
                "rule_id": "ssh-bruteforce", "entity": user, "alert_id": f"a{minute}", "revision": 0})])
    events.seal()
    decisions.seal()
    return events


QUESTIONS = [
    dict(start=datetime(2026, 3, 2, 10, tzinfo=UTC), end=datetime(2026, 3, 2, 11, tzinfo=UTC), entity="mallory"),
    dict(start=datetime(2026, 3, 2, tzinfo=UTC), end=datetime(2026, 3, 3, tzinfo=UTC), resource="billing/*",
         outcome="failure"),
    dict(source="*/payments/*", action="write"),
    dict(rule="ssh-bruteforce"),
    dict(user="bob", start=datetime(2026, 3, 1, 23, tzinfo=UTC)),
    dict(start=datetime(2026, 3, 1, 5, tzinfo=UTC), end=datetime(2026, 3, 1, 6, tzinfo=UTC)),
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_audit_search_skips_segments_and_returns_what_a_full_scan_returns(tmp_path: Path, question: dict) -> None:
    from logwarden.audit.search import Query, search

    _busy_trail(tmp_path)
    query = Query(**question)
    fast, full = search(tmp_path, query, KEY), search(tmp_path, query, KEY, skip=False)
    assert [h.to_dict() for h in fast.hits] == [h.to_dict() for h in full.hits] and fast.hits
    assert all(h.verified for h in fast.hits) and not fast.problems
    assert all(query.wants(h.kind, h.at, h.data) for h in fast.hits)
    if "start" in question or "source" in question:
        assert fast.skipped > 0 and fast.read < full.read  # the seals spared whole segments


def test_audit_search_says_which_records_come_from_a_segment_that_does_not_verify(tmp_path: Path) -> None:
    from logwarden.audit.search import Query, search

    _busy_trail(tmp_path)
    query = Query(entity="mallory", classes=("events",))
    before = search(tmp_path, query, KEY)
    seg = segments(tmp_path / "events")[3]
    raw = seg.read_bytes()
    word = b'"read"' if b'"read"' in raw else b'"write"'
    seg.write_bytes(raw.replace(word, word.upper(), 1))
    after = search(tmp_path, query, KEY)
    bad = {h.seq for h in after.hits if not h.verified}
    assert bad and all(h.segment == seg.name for h in after.hits if not h.verified)
    assert any(h.verified for h in after.hits) and after.problems
    assert len(after.hits) == len(before.hits)


def test_audit_search_opens_encrypted_records_and_the_command_answers(tmp_path: Path) -> None:
    from logwarden.audit.search import Query, search

    cipher = Cipher(b"e" * 32)
    _busy_trail(tmp_path, cipher)
    query = Query(start=datetime(2026, 3, 2, 10, tzinfo=UTC), end=datetime(2026, 3, 2, 11, tzinfo=UTC),
                  user="mallory")
    hits = search(tmp_path, query, KEY, cipher).hits
    assert hits and all(h.data["user.name"] == "mallory" for h in hits)
    env = {"PATH": os.environ["PATH"], "LOGWARDEN_AUDIT_KEY": KEY.decode(),
           "LOGWARDEN_AUDIT_ENCRYPTION_KEY": (b"e" * 32).hex()}
    done = subprocess.run([sys.executable, "-m", "logwarden", "audit", "search", "--path", str(tmp_path),
                           "--from", "2026-03-02T10:00:00Z", "--to", "2026-03-02T11:00:00Z", "--user", "mallory",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert [(x["seq"], x["data"]["user.name"], x["verified"]) for x in lines] == \
        [(h.seq, "mallory", True) for h in hits]
    assert "skipped by their seals" in done.stderr

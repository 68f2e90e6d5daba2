"""Real services for tests: Redis (the machine's, or one we start) and a local HTTP server that
speaks the Slack Web API methods and the incoming-webhook endpoint logwarden uses."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

TOKEN = "xoxb-test-0000000000-SECRETTOKENVALUE"
WEBHOOK_PATH = "/services/T000/B000/WEBHOOKSECRETPART"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The machine's Redis on 127.0.0.1:6379, or a redis-server of our own on a free port."""
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
        yield "redis://127.0.0.1:6379/0"
        return
    except redis.RedisError:
        pass
    if shutil.which("redis-server") is None:
        pytest.fail("no Redis reachable on 127.0.0.1:6379 and no redis-server to start")
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"lwtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


class Clock:
    """A wall clock a test sets (epoch seconds)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def store_on(kind: str, request: pytest.FixtureRequest, policy: Any, prefix: str = "t:") -> Any:
    """An incident store on the in-memory backend or on the real Redis (with the test's own
    prefix), with a clock the test sets."""
    from logwarden.incidents.backend import MemoryBackend
    from logwarden.incidents.redis_backend import RedisBackend
    from logwarden.incidents.store import IncidentStore

    if kind == "memory":
        return IncidentStore(MemoryBackend(prefix), policy, Clock())
    url, key_prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return IncidentStore(RedisBackend.from_url(url, key_prefix), policy, Clock())


class FakeSlack:
    """Records every call; ``script`` answers the next requests with 429/500/hang/ok."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: deque[str] = deque()
        self.down = False  # every request answers 503 while True
        self.usergroups: dict[str, list[str]] = {}  # user-group id -> member ids (usergroups.users.list)
        self._ts = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api/"
        self.webhook_url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self, thread: bool | None = None) -> list[dict[str, Any]]:
        out = [c for c in self.calls if c["method"] == "chat.postMessage" and c["ok"]]
        if thread is not None:
            out = [c for c in out if bool(c["body"].get("thread_ts")) == thread]
        return out

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            # ts counts wall-clock seconds, as Slack's do, so ``oldest`` filters work
            return f"{time.time():.0f}.{self._ts:06d}"

    def history(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """conversations.history: the channel's top-level messages since ``oldest``, newest first,
        with their metadata when ``include_all_metadata``."""
        oldest = float(query.get("oldest") or 0)
        with_meta = str(query.get("include_all_metadata", "")).lower() in ("1", "true")
        out = []
        for c in reversed(self.posts(thread=False)):
            if c["body"].get("channel") != query.get("channel") or float(c["ts"]) < oldest:
                continue
            msg: dict[str, Any] = {"type": "message", "ts": c["ts"], "text": c["body"].get("text", "")}
            meta = c["body"].get("metadata")
            if with_meta and meta:
                msg["metadata"] = json.loads(meta) if isinstance(meta, str) else meta
            out.append(msg)
        return out

    def replies(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """conversations.replies: a thread's replies since ``oldest``, with their metadata."""
        oldest = float(query.get("oldest") or 0)
        out = []
        for c in self.posts(thread=True):
            if c["body"].get("thread_ts") != query.get("ts") or float(c["ts"]) < oldest:
                continue
            meta = c["body"].get("metadata")
            out.append({"type": "message", "ts": c["ts"], "thread_ts": c["body"]["thread_ts"],
                        **({"metadata": json.loads(meta) if isinstance(meta, str) else meta} if meta else {})})
        return out

    def ok_calls(self, method: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method and c["ok"]]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                method = "webhook" if self.path == WEBHOOK_PATH else self.path.rsplit("/", 1)[-1]
                with fake._lock:
                    scripted = fake.script and (method.startswith("chat.") or method == "webhook")
                    action = "503" if fake.down else (fake.script.popleft() if scripted else "ok")
                call = {"method": method, "body": body, "ok": action == "ok", "answer": action,
                        "auth": self.headers.get("Authorization", "")}
                with fake._lock:
                    fake.calls.append(call)
                if action.startswith("hang"):
                    time.sleep(float(action.split(":")[1]))
                    return self._reply(200, {"ok": True, "channel": "C1", "ts": "0"})
                if action.startswith("slow"):  # Slack takes the message, but answers too late
                    call["ok"], call["answer"] = True, "ok"
                    call["ts"] = fake._next_ts()
                    time.sleep(float(action.split(":")[1]))
                    return self._reply(200, {"ok": True, "channel": body.get("channel", "C1"), "ts": call["ts"]})
                if action.startswith("429"):
                    retry = action.split(":")[1] if ":" in action else "1"
                    return self._reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry})
                if action in ("500", "503"):
                    return self._reply(int(action), {"ok": False, "error": "fatal_error"})
                if method == "webhook":
                    return self._reply(200, None, text="ok")
                if call["auth"] != f"Bearer {TOKEN}":
                    call["ok"] = False
                    return self._reply(200, {"ok": False, "error": "invalid_auth"})
                if method == "conversations.history":
                    return self._reply(200, {"ok": True, "messages": fake.history(body), "has_more": False})
                if method == "conversations.replies":
                    return self._reply(200, {"ok": True, "messages": fake.replies(body), "has_more": False})
                if method == "usergroups.users.list":
                    members = fake.usergroups.get(body.get("usergroup", ""))
                    if members is None:
                        return self._reply(200, {"ok": False, "error": "no_such_subteam"})
                    return self._reply(200, {"ok": True, "users": members})
                if method == "conversations.list":
                    return self._reply(200, {"ok": True, "channels": [], "response_metadata": {"next_cursor": ""}})
                ts = fake._next_ts()
                if method == "chat.postMessage":
                    call["ts"] = ts
                channel = body.get("channel", "C1")
                return self._reply(200, {"ok": True, "channel": channel, "ts": body.get("ts", ts)})

            def _reply(self, status: int, doc: Any, headers: dict[str, str] | None = None, text: str = "") -> None:
                payload = (json.dumps(doc) if doc is not None else text).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if doc is not None else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


class OwnRedis:
    """A redis-server that keeps its data across a stop (``SHUTDOWN SAVE``) and a start."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is needed for this test")
        self.port, self.workdir, self.proc = _free_port(), workdir, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", str(self.workdir), "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(250):
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.RedisError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        try:
            redis.Redis(port=self.port).shutdown(save=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it goes
        assert self.proc is not None
        self.proc.wait(10)

"""The wire, byte for byte: a fixed flow against the real server, compared with a recording.

Every exchange of `_flow` (the SDK's flow: an assistant, a thread, a message, a run on the
scripted echo backend, its retrieval, the message and run-step lists, streamed runs, and a
few errors) is kept as its status, its headers (names, order and values) and its body text,
and compared with the recording of its database, `tests/api/data/recorded_wire_sqlite.json`
or `recorded_wire_postgresql.json`. There are two because they differ today: PostgreSQL's
JSONB returns an object it stored (an assistant read back, a run) with its keys in its own
order (shorter keys first), SQLite as written.

What differs between two runs of the same flow is replaced by placeholders before comparing
(`normalized`), nothing else:

- an id (`asst_…`, `thread_…`, `msg_…`, `run_…`, `step_…`, `req_…`, `call_…`: a lowercase
  prefix, `_` or `-`, and 16 or more letters and digits) becomes `<run_1>`, `<run_2>`, … numbered
  per prefix in order of first appearance over the whole flow (headers before body), so
  that the same object must appear in the same places;
- the number of a `"…_at"` key (`created_at`, `completed_at`, …: epoch seconds) becomes
  `<ts>`; `null` stays `null`;
- the `date` header's value becomes `<date>`.

Record anew (after a change *meant* to change the wire; review the diff of the JSON file):

    pytest tests/api/test_recorded_wire.py --record-wire -p no:cacheprovider

which writes both files from what the server answered (`-k sqlite` or `-k postgres` for one).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistantd.testing.server import Server, SwitchRouter

DATA = Path(__file__).parent / "data"

_ID = re.compile(rb"\b([a-z]+[_-])[A-Za-z0-9]{16,}\b")
_TIMESTAMP = re.compile(rb'("[a-z_]+_at": ?)\d+')


class Normalizer:
    """Placeholders for the values that differ between runs (see the module docstring)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, str] = {}
        self.counts: dict[bytes, int] = {}

    def _id(self, m: re.Match[bytes]) -> bytes:
        value, prefix = m.group(0), m.group(1)
        if value not in self.seen:
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            self.seen[value] = f"<{prefix.decode()}{self.counts[prefix]}>"
        return self.seen[value].encode()

    def text(self, raw: bytes) -> str:
        raw = _ID.sub(self._id, raw)
        raw = _TIMESTAMP.sub(rb"\1<ts>", raw)
        return raw.decode("utf-8")

    def header(self, name: bytes, value: bytes) -> list[str]:
        if name.lower() == b"date":
            return [name.decode("latin-1"), "<date>"]
        return [name.decode("latin-1"), self.text(value)]


class Connection:
    """HTTP/1.1 on one keep-alive socket, read as bytes: header names keep their case and
    order (an HTTP client library would fold them), a chunked body is joined (its chunk
    sizes depend on timing, its bytes do not)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        """(status line, headers as sent, body) of one exchange."""
        lines = [f"{method} {target} HTTP/1.1", "Host: wire.test"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        status = self._line()
        got: list[tuple[bytes, bytes]] = []
        while line := self._line():
            name, _, value = line.partition(b":")
            got.append((name, value.strip()))
        fields = {k.lower(): v for k, v in got}
        if fields.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._exactly(2)
            self._line()  # the blank line after the last chunk (no trailers are sent)
            return status, got, b"".join(parts)
        return status, got, self._exactly(int(fields.get(b"content-length", b"0")))


class Recorder:
    """Sends the flow's requests and keeps each exchange, normalized."""

    def __init__(self, server: Server) -> None:
        url = httpx.URL(server.base_url)
        self.conn = Connection(url.host, url.port or 80)
        self.key = server.keys["alpha"]
        self.norm = Normalizer()
        self.exchanges: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {key or self.key}", "OpenAI-Beta": "assistants=v2"}
        return {**h, **extra}

    def send(
        self,
        name: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        keep: bool = True,
    ) -> Any:
        """One request; its body parsed as JSON (None for a stream). `keep=False` for the
        polls, whose number depends on timing."""
        for label, value in self.ids.items():
            path = path.replace(f"{{{label}}}", value)
        sent = dict(headers if headers is not None else self.headers())
        if json_body is not None:
            content = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        status, got, body = self.conn.request(method, path, sent, content)
        if keep:
            self.exchanges.append(
                {
                    "name": name,
                    "request": f"{method} {self.norm.text(path.encode())}",
                    "status": status.decode("latin-1"),
                    "headers": [self.norm.header(k, v) for k, v in got],
                    "body": self.norm.text(body),
                }
            )
        if any(k.lower() == b"content-type" and v.startswith(b"text/") for k, v in got):
            return None
        return json.loads(body)

    def settle(self, thread_label: str, run_id: str) -> None:
        """Poll (unrecorded) until the run has ended."""
        deadline = time.monotonic() + 30
        while True:
            run = self.send(
                "poll", "GET", f"/v1/threads/{{{thread_label}}}/runs/{run_id}", keep=False
            )
            if run["status"] not in ("queued", "in_progress", "cancelling"):
                return
            assert time.monotonic() < deadline, f"run {run_id} did not end"
            time.sleep(0.02)


def _flow(rec: Recorder) -> None:
    r = rec.send(
        "create assistant",
        "POST",
        "/v1/assistants",
        json_body={
            "model": "gpt-4o-mini",
            "name": "wire",
            "instructions": "Answer briefly.",
            "metadata": {"case": "wire"},
        },
    )
    rec.ids["asst"] = asst = r["id"]
    rec.send("retrieve assistant", "GET", "/v1/assistants/{asst}")
    r = rec.send("create thread", "POST", "/v1/threads", json_body={"metadata": {"case": "wire"}})
    rec.ids["thread"] = r["id"]
    r = rec.send(
        "create message",
        "POST",
        "/v1/threads/{thread}/messages",
        json_body={"role": "user", "content": "hello wire"},
    )
    rec.ids["msg"] = r["id"]
    rec.send("retrieve message", "GET", "/v1/threads/{thread}/messages/{msg}")

    r = rec.send(
        "create run", "POST", "/v1/threads/{thread}/runs", json_body={"assistant_id": asst}
    )
    rec.ids["run"] = run = r["id"]
    rec.settle("thread", run)
    rec.send("retrieve run", "GET", "/v1/threads/{thread}/runs/{run}")
    rec.send(
        "retrieve run, poll helper",
        "GET",
        "/v1/threads/{thread}/runs/{run}",
        headers=rec.headers(**{"X-Stainless-Poll-Helper": "true"}),
    )
    rec.send("list messages", "GET", "/v1/threads/{thread}/messages")
    rec.send(
        "list messages, asc, limit 1", "GET", "/v1/threads/{thread}/messages?order=asc&limit=1"
    )
    r = rec.send("list run steps", "GET", "/v1/threads/{thread}/runs/{run}/steps")
    rec.ids["step"] = r["data"][0]["id"]
    rec.send("retrieve run step", "GET", "/v1/threads/{thread}/runs/{run}/steps/{step}")
    rec.send("list runs", "GET", "/v1/threads/{thread}/runs")

    r = rec.send(
        "create thread and run",
        "POST",
        "/v1/threads/runs",
        json_body={
            "assistant_id": asst,
            "thread": {"messages": [{"role": "user", "content": "second thread"}]},
        },
    )
    rec.ids["thread2"], rec.ids["run2"] = r["thread_id"], r["id"]
    rec.settle("thread2", r["id"])
    rec.send("retrieve run 2", "GET", "/v1/threads/{thread2}/runs/{run2}")
    rec.send("list messages 2", "GET", "/v1/threads/{thread2}/messages")

    rec.send(
        "add message",
        "POST",
        "/v1/threads/{thread}/messages",
        json_body={"role": "user", "content": [{"type": "text", "text": "streamed now"}]},
    )
    rec.send(
        "create run, streamed",
        "POST",
        "/v1/threads/{thread}/runs",
        json_body={"assistant_id": asst, "stream": True},
    )
    rec.send(
        "create thread and run, streamed",
        "POST",
        "/v1/threads/runs",
        json_body={
            "assistant_id": asst,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": "third"}]},
        },
    )
    rec.send(
        "modify message",
        "POST",
        "/v1/threads/{thread}/messages/{msg}",
        json_body={"metadata": {"seen": "yes"}},
    )

    # Errors.
    rec.send("404 unknown thread", "GET", "/v1/threads/thread_doesnotexist")
    rec.send("404 unknown run", "GET", "/v1/threads/{thread}/runs/run_abcdefghijklmnopqrstuvwx")
    rec.send("404 unknown path", "GET", "/v1/no/such/path")
    rec.send("404 wrong method", "PUT", "/v1/assistants", json_body={})
    rec.send(
        "400 missing assistant_id", "POST", "/v1/threads/{thread}/runs", json_body={"stream": False}
    )
    rec.send(
        "400 bad role",
        "POST",
        "/v1/threads/{thread}/messages",
        json_body={"role": "robot", "content": "x"},
    )
    rec.send(
        "400 not JSON",
        "POST",
        "/v1/threads/{thread}/messages",
        content=b'{"role": "user", ',
        headers=rec.headers(**{"Content-Type": "application/json"}),
    )
    rec.send("400 wrong id prefix", "GET", "/v1/threads/{thread}/runs/nope")
    rec.send("401 wrong key", "GET", "/v1/threads/{thread}", headers=rec.headers("sk-wrong-key"))
    rec.send("401 no key", "GET", "/v1/threads/{thread}", headers={})
    rec.send("delete thread", "DELETE", "/v1/threads/{thread2}")


@pytest.fixture
def recorder(server: Server, models: SwitchRouter) -> Iterator[Recorder]:
    rec = Recorder(server)
    try:
        yield rec
    finally:
        rec.conn.close()


def test_the_wire_matches_the_recording(
    server: Server, recorder: Recorder, request: pytest.FixtureRequest
) -> None:
    _flow(recorder)
    got = recorder.exchanges
    recording = DATA / f"recorded_wire_{server.dialect}.json"
    if request.config.getoption("--record-wire"):
        DATA.mkdir(exist_ok=True)
        recording.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    want = json.loads(recording.read_text())
    assert [e["name"] for e in got] == [e["name"] for e in want]
    for g, w in zip(got, want, strict=True):
        assert g == w, f"{g['name']}: the response differs from the recording"

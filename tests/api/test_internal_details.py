"""Errors a client reads name no internal URL or path: the embedding backend's address and
answer, and the embedded model's GGUF path, stay in the server log.

The embedding backend is a real HTTP server on a free port (an OpenAI-compatible
`/v1/embeddings`) that answers a 500 naming an internal host while `failing` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest

from assistantd.llm.llama_cpp import LlamaCppBackend
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, make_settings, start_server

SECRET_HOST = "embeddings.internal.example:8443"


class _Embeddings(BaseHTTPRequestHandler):
    failing = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.failing.is_set():
            self._answer(500, {"error": {"message": f"backend pod at {SECRET_HOST} is down"}})
            return
        data = []
        for i, text in enumerate(body["input"]):
            digest = hashlib.sha256(text.encode()).digest()
            data.append({"object": "embedding", "index": i, "embedding": [b - 128 for b in digest]})
        self._answer(200, {"object": "list", "data": data, "model": body["model"]})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def embeddings_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        _Embeddings.failing.clear()


@pytest.fixture(scope="module")
def embedding_server(
    embeddings_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    settings = make_settings(
        Path(tmp_path_factory.mktemp("embed-data")),
        embedding_base_url=embeddings_url,
        embedding_model="embed-test",
    )
    srv, stop = start_server(settings)
    try:
        yield srv
    finally:
        stop()


def _clean(message: str, url: str) -> None:
    for internal in (url, "127.0.0.1", SECRET_HOST, "/v1/embeddings"):
        assert internal not in message, (internal, message)


def test_embedding_backend_failures_name_no_url(
    embedding_server: Server, embeddings_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with embedding_server.client() as c:
        good = c.files.create(
            file=("etna.txt", b"Etna is a volcano in Sicily."), purpose="assistants"
        )
        store = c.vector_stores.create(name="kb", file_ids=[good.id])
        done = c.vector_stores.files.poll(good.id, vector_store_id=store.id)
        assert done.status == "completed", done.last_error

        _Embeddings.failing.set()
        try:
            # Ingestion: the file fails, saying what happened and not where.
            bad = c.files.create(file=("b.txt", b"Stromboli erupts often."), purpose="assistants")
            failed = c.vector_stores.files.create_and_poll(file_id=bad.id, vector_store_id=store.id)
            assert failed.status == "failed" and failed.last_error is not None
            assert failed.last_error.code == "server_error"
            assert "The embedding backend answered 500" in failed.last_error.message
            _clean(failed.last_error.message, embeddings_url)

            # The search endpoint: a 503 the SDK may retry, naming nothing internal.
            with pytest.raises(openai.InternalServerError) as e:
                c.vector_stores.search(store.id, query="volcano")
            assert e.value.status_code == 503 and e.value.type == "server_error"
            assert "embedding backend answered 500" in e.value.message
            _clean(e.value.message, embeddings_url)

            # A run's file_search: the run fails with the same words.
            embedding_server.models.use(
                ScriptedBackend(
                    [tool_call_turn("file_search", {"queries": ["volcano"]}), text_turn("x")]
                )
            )
            a = c.beta.assistants.create(
                model="m",
                tools=[{"type": "file_search"}],
                tool_resources={"file_search": {"vector_store_ids": [store.id]}},
            )
            run = c.beta.threads.create_and_run_poll(
                assistant_id=a.id,
                thread={"messages": [{"role": "user", "content": "Where is Etna?"}]},
                poll_interval_ms=50,
            )
            assert run.status == "failed" and run.last_error is not None
            assert "embedding backend answered 500" in run.last_error.message
            _clean(run.last_error.message, embeddings_url)
        finally:
            _Embeddings.failing.clear()
    # The server log keeps where it happened and what the backend said.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert embeddings_url in logged and SECRET_HOST in logged


def test_missing_gguf_path_stays_in_the_log(
    client: openai.OpenAI, models: SwitchRouter, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "/srv/secret-models/team-a/missing-model.gguf"
    models.use(LlamaCppBackend(gguf_path=secret))
    caplog.set_level(logging.WARNING)
    a = client.beta.assistants.create(model="local")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        poll_interval_ms=50,
    )
    assert run.status == "failed" and run.last_error is not None
    assert "ASSISTANTD_LLM_GGUF_PATH" in run.last_error.message
    assert "secret-models" not in run.last_error.message
    assert secret in "\n".join(r.getMessage() for r in caplog.records)

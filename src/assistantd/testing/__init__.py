"""Test doubles and test helpers, for the test suite and the benchmarks (never the runtime).

Everything here is real, not a mock: a backend that streams from a script, an HTTP server
that speaks the chat-completions wire, an embedder, a served assistantd on loopback.

scripted.py       `ScriptedBackend`: a deterministic model backend answering from a script
fake_upstream.py  `FakeUpstream`: a small real OpenAI-compatible server
                  (`python -m assistantd.testing.fake_upstream --port N`)
embedders.py      `HashingEmbedder`: a deterministic embedder with no model
server.py         `start_server`, `Server`, `SwitchRouter`, `make_settings`, `pg_database`, ...
sse.py            server-sent events read off a raw HTTP stream
documents.py      small real PDF, DOCX and PPTX files built in memory
indexing.py       `add_text`: put a text into a retrieval index as the service would
sandbox.py        the installed sandbox, a planted secret, forged kernel frames
admin_api.py      `AdminApi`: an in-memory admin API in the spec's shapes (console tests)
runs.py           `run_body`, `migrated_sqlite`, `insert_queued`: runs without HTTP

Nothing under `assistantd` outside this package may import it (tests/unit/test_architecture.py);
`server.py` needs the `dev` extra (the `openai` SDK).
"""

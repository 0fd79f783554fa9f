"""Files a code_interpreter cell writes are copied out within bounds, and the output says so.

Small settings stand in for the defaults: 1 MB a file, 2 files an execution, 3 MB a project
(the probe this guards against wrote 500 MB to /mnt/data three times and added 1.5 GB).
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from assistantd.files.storage import project_dir
from assistantd.testing.sandbox import ATTACKS, FORGE, rss_mb
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, make_settings, pg_database, start_server

MB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def small_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url, drop = pg_database() if request.param == "postgres" else (None, None)
    settings = make_settings(
        tmp_path_factory.mktemp(f"out-{request.param}"),
        url,
        sandbox_max_output_file_mb=1,
        sandbox_max_output_files=2,
        sandbox_output_storage_mb=3,
    )
    srv, stop = start_server(settings)
    try:
        yield srv
    finally:
        stop()
        if drop:
            drop()


def write(*files: tuple[str, float]) -> str:
    return "".join(
        f"open('/mnt/data/{name}', 'wb').write(b'0' * int({mb} * {MB}))\n" for name, mb in files
    )


def run_cell(
    client: openai.OpenAI, server: Server, thread_id: str, assistant_id: str, code: str
) -> tuple[str, str, list[str]]:
    """Run one cell; returns (step logs, what the model read, the project's output files)."""
    backend = server.models.use(
        ScriptedBackend([tool_call_turn("code_interpreter", {"code": code}), text_turn("Done.")])
    )
    client.beta.threads.messages.create(thread_id, role="user", content="go")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data[0]
    outputs = step.step_details.tool_calls[0].code_interpreter.outputs
    tool_msg = next(m for m in backend.requests[1].messages if m.role == "tool")
    return outputs[0].logs, tool_msg.content or "", output_names(client)


def output_names(client: openai.OpenAI) -> list[str]:
    return sorted(f.filename for f in client.files.list(purpose="assistants_output"))


def stored_bytes(server: Server) -> int:
    return sum(
        p.stat().st_size for p in project_dir(server.settings.data_dir, "alpha").glob("file-*")
    )


def test_output_files_are_bounded_per_execution_and_per_project(small_server: Server) -> None:
    with small_server.client() as client:
        a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
        t = client.beta.threads.create()

        logs, model_read, names = run_cell(
            client,
            small_server,
            t.id,
            a.id,
            write(("a.bin", 0.9), ("b.bin", 0.9), ("c.bin", 0.9), ("big.bin", 2)),
        )
        assert names == ["a.bin", "b.bin"]
        note = (
            "[Not copied out of /mnt/data for the user: big.bin (2.0 MB, larger than the 1.0 MB "
            "limit per file); c.bin (943718 bytes, over the limit of 2 files per execution). "
            "They are still in the session.]"
        )
        assert note in logs and note in model_read

        logs, model_read, names = run_cell(
            client, small_server, t.id, a.id, write(("d.bin", 0.9), ("e.bin", 0.9))
        )
        assert names == ["a.bin", "b.bin", "d.bin"]
        note = (
            "[Not copied out for the user: e.bin (0.9 MB): this project's storage for code "
            "interpreter files (3.0 MB) is full."
        )
        assert note in logs and note in model_read
        assert (
            "sandbox:/mnt/data/d.bin" in model_read and "sandbox:/mnt/data/e.bin" not in model_read
        )

        # Three more executions of the same: nothing more is stored.
        for n in range(3):
            logs, _, names = run_cell(
                client, small_server, t.id, a.id, write((f"more{n}.bin", 0.9))
            )
            assert f"more{n}.bin (0.9 MB): this project's storage" in logs
        assert names == ["a.bin", "b.bin", "d.bin"]
        assert stored_bytes(small_server) <= 3 * MB

        # Deleting an output makes room again.
        client.files.delete(
            next(
                f.id
                for f in client.files.list(purpose="assistants_output")
                if f.filename == "a.bin"
            )
        )
        logs, _, names = run_cell(client, small_server, t.id, a.id, write(("g.bin", 0.9)))
        assert names == ["b.bin", "d.bin", "g.bin"] and "Not copied" not in logs
        # The cells' files were all kept in the session itself.
        logs, _, _ = run_cell(
            client, small_server, t.id, a.id, "import os\nprint(sorted(os.listdir('/mnt/data')))"
        )
        assert logs.strip() == str(
            sorted(
                [
                    "a.bin",
                    "b.bin",
                    "c.bin",
                    "big.bin",
                    "d.bin",
                    "e.bin",
                    "more0.bin",
                    "more1.bin",
                    "more2.bin",
                    "g.bin",
                ]
            )
        )


def test_figures_count_against_the_project_storage(small_server: Server) -> None:
    with small_server.client("beta") as client:
        a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
        t = client.beta.threads.create()
        run_cell(client, small_server, t.id, a.id, write(("x.bin", 0.95), ("y.bin", 0.95)))
        run_cell(client, small_server, t.id, a.id, write(("z.bin", 0.95)))
        logs, _, names = run_cell(
            client,
            small_server,
            t.id,
            a.id,
            (
                "import matplotlib.pyplot as plt, numpy as np\n"
                "plt.imshow(np.random.default_rng(0).random((600, 600))); plt.show()"
            ),
        )
        assert names == ["x.bin", "y.bin", "z.bin"]
        assert "[Not copied out for the user: 1 figure(s): this project's storage" in logs


def test_forged_frames_through_a_run_keep_the_server_flat(small_server: Server) -> None:

    with small_server.client() as client:
        a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
        t = client.beta.threads.create()
        run_cell(client, small_server, t.id, a.id, "1")
        before = rss_mb()
        for _ in range(2):
            logs, model_read, _ = run_cell(
                client, small_server, t.id, a.id, FORGE + ATTACKS["100M characters of logs"]
            )
            assert (
                "The session sent more than the server accepts (more than 20000 characters" in logs
            )
            assert len(logs) < 1000 and "The session was restarted" in model_read
        assert rss_mb() - before < 50

"""The official `openai` Node SDK, unchanged, against assistantd (installed by `make install`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter

NODE_DIR = Path(__file__).parents[1] / "node"

pytestmark = pytest.mark.node


def test_assistant_stream_and_helpers(server: Server, models: SwitchRouter) -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists():
        pytest.fail("node and tests/node/node_modules/openai are required: run `make install`")
    models.use(
        ScriptedBackend(
            [
                tool_call_turn("get_weather", {"city": "Paris"}),
                text_turn("It is sunny in Paris."),
                text_turn("Anything else?"),
            ]
        )
    )
    env = dict(os.environ, BASE_URL=server.base_url, API_KEY=server.keys["alpha"])
    proc = subprocess.run(
        ["node", "assistant_stream.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["statuses"] == ["requires_action", "completed", "completed"]
    assert out["toolCalls"] == ["get_weather"]
    assert json.loads(out["toolArgs"]) == {"city": "Paris"}
    assert out["text"] == "It is sunny in Paris."
    assert out["finalMessages"] == ["It is sunny in Paris."]
    assert (
        out["events"][0] == "thread.run.created"
        and out["events"][-1] == "thread.run.requires_action"
    )
    assert out["walked"] == 3  # user, assistant, assistant: 2 per page, each seen once
    assert out["notFound"]["status"] == 404

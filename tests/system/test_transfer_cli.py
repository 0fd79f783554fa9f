"""`assistantd import` and `assistantd export`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from assistantd.testing import dumps


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ASSISTANTD_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "assistantd", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=180,
    )


def _row(out: str, name: str) -> list[str]:
    return next(line.split()[-2:] for line in out.splitlines() if line.startswith(name))


def test_dry_run_import_again_export(tmp_path: Path) -> None:
    dump = dumps.write_exporter_dump(tmp_path / "dump")
    data = tmp_path / "data"

    dry = _cli(data, "import", str(dump), "--project", "team", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout and _row(dry.stdout, "messages") == [
        "6",
        "0",
    ]

    first = _cli(data, "import", str(dump), "--project", "team")
    assert first.returncode == 0, first.stderr
    assert _row(first.stdout, "messages") == ["6", "0"] and _row(first.stdout, "run steps") == [
        "4",
        "0",
    ]
    assert "1 run(s) were not over when exported" in first.stdout
    assert "file bytes: 1 found; 2 missing" in first.stdout

    again = _cli(data, "import", str(dump), "--project", "team")
    assert again.returncode == 0, again.stderr
    assert _row(again.stdout, "messages") == ["0", "6"] and _row(again.stdout, "assistants") == [
        "0",
        "1",
    ]

    out = tmp_path / "out"
    exported = _cli(data, "export", str(out), "--project", "team")
    assert exported.returncode == 0, exported.stderr
    record = json.loads((out / "threads" / f"{dumps.THREAD}.json").read_text())
    assert record["export_schema"] == "assistants-thread-export/v1"
    assert [m["id"] for m in record["messages"]] == [m["id"] for m in dumps.messages()]
    assert (out / "files" / dumps.FILE_DOC).read_bytes() == dumps.DOC_TEXT


def test_a_malformed_dump_writes_nothing(tmp_path: Path) -> None:
    dump = dumps.write_exporter_dump(tmp_path / "dump")
    path = dump / "threads" / f"{dumps.THREAD}.json"
    record = json.loads(path.read_text())
    record["runs"][1]["created_at"] = "yesterday"
    path.write_text(json.dumps(record))
    data = tmp_path / "data"
    bad = _cli(data, "import", str(dump))
    assert bad.returncode == 1
    assert f"threads/{dumps.THREAD}.json: runs[1].created_at: expected Unix seconds" in bad.stderr
    # nothing of the good objects went in either: a fixed dump imports everything
    record["runs"][1]["created_at"] = dumps.T0 + 21
    path.write_text(json.dumps(record))
    good = _cli(data, "import", str(dump))
    assert good.returncode == 0 and _row(good.stdout, "assistants") == ["1", "0"]

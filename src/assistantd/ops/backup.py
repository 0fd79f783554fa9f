"""`assistantd backup PATH` and `assistantd restore PATH`: the database and the uploaded files.

A backup is a directory:

    manifest.json    what it holds: format, database kind, alembic revision, file count
    assistantd.db    SQLite: a consistent copy made with SQLite's online backup API
    database.dump    PostgreSQL: `pg_dump --format=custom`
    files/           `<DATA_DIR>/files` (uploads and code-interpreter outputs)

It may be made while the server runs. Files are copied before the database and again after
it: a file is written (and renamed into place) before its row commits and never changes
afterwards, so every row in the copy finds its file; a file deleted meanwhile is an orphan
in the backup, which nothing reads. Restore stops at nothing: run it with the server
stopped. It replaces the database's contents and the files directory, then runs the
migrations (a backup of an older version is brought up to date).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from assistantd.core.settings import Settings
from assistantd.migrations import upgrade

FORMAT = 1
MANIFEST = "manifest.json"


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why."""


def _kind(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise BackupError(f"backups support SQLite and PostgreSQL, not {make_url(url).drivername}")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it (`postgresql://…`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_files(source: Path, target: Path) -> int:
    """Copy the files under `source` not yet in `target` (files never change once written)."""
    copied = 0
    if not source.is_dir():
        return 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or ".part" in path.name:
            continue
        dest = target / path.relative_to(source)
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, dest)
        except FileNotFoundError:
            continue  # deleted while we copied
        copied += 1
    return copied


def _revision_sqlite(db: Path) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def _run(args: list[str]) -> None:
    try:
        out = subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{args[0]} is not installed (PostgreSQL backups need the PostgreSQL client tools)"
        ) from exc
    if out.returncode != 0:
        raise BackupError(f"{args[0]} failed: {out.stderr.strip()}")


def files_dir(settings: Settings) -> Path | None:
    """Where the uploaded files are on this machine: `ASSISTANTD_FILES_DIR`, else
    `<DATA_DIR>/files`; None with S3 storage (the bucket is backed up by its own means)."""
    if settings.storage == "s3":
        return None
    return settings.files_dir or settings.data_dir / "files"


def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    """Write a backup of the server's database and files into the new directory `dest`."""
    url = settings.resolved_database_url
    kind = _kind(url)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    files = files_dir(settings)
    if files is not None:
        _copy_files(files, dest / "files")
    revision: str | None
    if kind == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(dest / "assistantd.db")
        try:
            source.backup(target)  # one consistent snapshot, while writers go on
        finally:
            target.close()
            source.close()
        revision = _revision_sqlite(dest / "assistantd.db")
    else:
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--file",
                str(dest / "database.dump"),
                libpq_url(url),
            ]
        )
        revision = None
    if files is not None:
        _copy_files(files, dest / "files")  # the files of rows committed during the copy
    manifest = {
        "format": FORMAT,
        "created_at": int(time.time()),
        "database": kind,
        "revision": revision,
        "files": sum(1 for p in (dest / "files").rglob("*") if p.is_file()),
        # With S3 storage the bucket is not copied: its versioning or replication backs it up.
        "files_storage": "s3" if files is None else "local",
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Replace the server's database and files with the backup in `source` (server stopped)."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not an assistantd backup (no readable {MANIFEST})") from exc
    url = settings.resolved_database_url
    kind = _kind(url)
    if manifest.get("database") != kind:
        raise BackupError(
            f"the backup holds a {manifest.get('database')} database; the server uses {kind}"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        target_path = _sqlite_path(url)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        backup_db = sqlite3.connect(source / "assistantd.db")
        target = sqlite3.connect(target_path)
        try:
            backup_db.backup(target)
        finally:
            target.close()
            backup_db.close()
    else:
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--dbname",
                libpq_url(url),
                str(source / "database.dump"),
            ]
        )
    files = files_dir(settings)
    if files is not None:
        _replace_files(source / "files", files)
    upgrade(url)
    return manifest


def _replace_files(source: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target.parent))
    _copy_files(source, staging)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)

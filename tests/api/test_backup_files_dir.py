"""Backup and restore find the files where the settings put them (`ASSISTANTD_FILES_DIR`),
and leave S3 storage's bucket alone."""

from __future__ import annotations

from pathlib import Path

from assistantd.migrations import upgrade
from assistantd.ops.backup import backup, restore
from assistantd.testing.server import make_settings


def test_files_dir_is_backed_up_and_restored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", files_dir=tmp_path / "shared")
    settings.data_dir.mkdir()
    upgrade(settings.resolved_database_url)
    stored = tmp_path / "shared" / "default" / "file-abc"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"hello")

    manifest = backup(settings, tmp_path / "backup")
    assert manifest["files"] == 1 and manifest["files_storage"] == "local"
    assert (tmp_path / "backup" / "files" / "default" / "file-abc").read_bytes() == b"hello"

    elsewhere = make_settings(tmp_path / "data2", files_dir=tmp_path / "shared2")
    restore(elsewhere, tmp_path / "backup")
    assert (tmp_path / "shared2" / "default" / "file-abc").read_bytes() == b"hello"
    assert not (tmp_path / "data2" / "files").exists()


def test_s3_storage_backs_up_the_database_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", storage="s3", s3_bucket="b")
    settings.data_dir.mkdir()
    upgrade(settings.resolved_database_url)
    (tmp_path / "data" / "files").mkdir(parents=True)
    (tmp_path / "data" / "files" / "stray").write_bytes(b"not the bucket")

    manifest = backup(settings, tmp_path / "backup")
    assert manifest["files"] == 0 and manifest["files_storage"] == "s3"
    assert (tmp_path / "backup" / "assistantd.db").is_file()

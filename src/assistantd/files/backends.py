"""The file store the settings ask for (`ASSISTANTD_STORAGE`); see `storage.py`."""

from __future__ import annotations

from assistantd.core.settings import Settings
from assistantd.files.s3 import S3Store
from assistantd.files.storage import FileStore, LocalStore


def build_store(settings: Settings) -> FileStore:
    """A `LocalStore` in FILES_DIR (default DATA_DIR/files) or an `S3Store`."""
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ValueError("ASSISTANTD_STORAGE=s3 needs ASSISTANTD_S3_BUCKET")
        return S3Store(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return LocalStore(settings.files_dir or settings.data_dir / "files")

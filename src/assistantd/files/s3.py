"""`S3Store`: file bytes as objects of an S3-compatible bucket, through aiobotocore.

aiobotocore is botocore (the AWS SDK core: request signing, the credential chain,
retries, regions, endpoint rules) on aiohttp, maintained by aio-libs and used by s3fs;
it is the async client the rest of the ecosystem builds on (aioboto3 wraps it with the
resource API, which nothing here needs). Any S3-compatible server works through
``ASSISTANTD_S3_ENDPOINT_URL`` (MinIO, Ceph RGW, R2, ...).

Objects are ``<prefix><project>/<file_id>``. Files up to `MULTIPART_THRESHOLD` go up in
one PUT; larger uploads (a temp file on disk) in parts of `PART_SIZE`, never whole in
memory, and an interrupted multipart upload is aborted. A client's aiohttp session
belongs to the loop that made it: the store keeps one client for its home loop (the
app's, where it was built) and closes it in `aclose`; a call from any other loop (a
script's ``asyncio.run``) uses a client of its own for that call.

Every failure leaves as the store's errors (`storage.py`): a missing object as
`FileMissing`, anything else (the endpoint unreachable, access denied, no such bucket,
a 5xx after botocore's retries) as `StorageUnavailable`, logged with the bucket and key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from assistantd.files.storage import FileMissing, StorageUnavailable, project_key

log = logging.getLogger("assistantd.files")

MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}
# What botocore and its aiohttp transport raise when S3 cannot be used (after retries).
_FAILURES = (ClientError, BotoCoreError, aiohttp.ClientError, OSError)


class S3Store:
    """File bytes in `bucket` under `prefix`."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}),
        }
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        try:
            self._home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._home = None

    def key(self, project_id: str, file_id: str) -> str:
        return f"{self.prefix}{project_key(project_id)}/{file_id}"

    @contextlib.contextmanager
    def _errors(self, action: str, file_id: str, key: str, *, reading: bool) -> Iterator[None]:
        """S3 failures as `FileMissing` (a read of an absent object) or `StorageUnavailable`."""
        try:
            yield
        except _FAILURES as exc:
            if (
                reading
                and isinstance(exc, ClientError)
                and exc.response.get("Error", {}).get("Code") in _MISSING
            ):
                raise FileMissing(file_id) from None
            log.warning("file store: could not %s s3://%s/%s: %r", action, self.bucket, key, exc)
            raise StorageUnavailable(action, file_id) from exc

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        if self._home is None:
            self._home = loop
        if loop is not self._home:
            async with get_session().create_client("s3", **self._options) as client:
                yield client
            return
        if self._client is None:
            self._client = await self._stack.enter_async_context(
                get_session().create_client("s3", **self._options)
            )
        yield self._client

    async def put_file(self, project_id: str, file_id: str, source: Path) -> None:
        size = (await asyncio.to_thread(source.stat)).st_size
        if size <= MULTIPART_THRESHOLD:
            await self.put_bytes(project_id, file_id, await asyncio.to_thread(source.read_bytes))
        else:
            key = self.key(project_id, file_id)
            with self._errors("store", file_id, key, reading=False):
                async with self._use() as client:
                    await self._upload_parts(client, key, source)
        await asyncio.to_thread(source.unlink, True)

    async def _upload_parts(self, client: Any, key: str, source: Path) -> None:
        upload = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        parts = []
        try:
            with source.open("rb") as fh:
                number = 1
                while chunk := await asyncio.to_thread(fh.read, PART_SIZE):
                    done = await client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    number += 1
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    async def put_bytes(self, project_id: str, file_id: str, data: bytes) -> None:
        key = self.key(project_id, file_id)
        with self._errors("store", file_id, key, reading=False):
            async with self._use() as client:
                await client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def get_bytes(self, project_id: str, file_id: str) -> bytes:
        key = self.key(project_id, file_id)
        with self._errors("read", file_id, key, reading=True):
            async with self._use() as client:
                response = await client.get_object(Bucket=self.bucket, Key=key)
                async with response["Body"] as body:
                    data: bytes = await body.read()
        return data

    async def exists(self, project_id: str, file_id: str) -> bool:
        key = self.key(project_id, file_id)
        try:
            with self._errors("look up", file_id, key, reading=True):
                async with self._use() as client:
                    await client.head_object(Bucket=self.bucket, Key=key)
        except FileMissing:
            return False
        return True

    async def local_path(self, project_id: str, file_id: str) -> Path | None:
        return None

    async def stream(self, project_id: str, file_id: str) -> tuple[int, AsyncIterator[bytes]]:
        """For the app's own loop (downloads): the body outlives this call."""
        key = self.key(project_id, file_id)
        with self._errors("read", file_id, key, reading=True):
            async with self._use() as client:
                response = await client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            async with body:
                while True:
                    with self._errors("read", file_id, key, reading=False):
                        chunk = await body.read(1 << 20)
                    if not chunk:
                        return
                    yield chunk

        return int(response["ContentLength"]), chunks()

    async def delete(self, project_id: str, file_id: str) -> None:
        key = self.key(project_id, file_id)
        with self._errors("delete", file_id, key, reading=False):
            async with self._use() as client:
                await client.delete_object(Bucket=self.bucket, Key=key)

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()

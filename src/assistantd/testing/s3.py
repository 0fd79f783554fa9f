"""A real S3-wire server for tests: moto's ThreadedMotoServer on a free loopback port.

It speaks the S3 REST protocol over HTTP (signatures, multipart uploads, errors), so the
real SDK client (aiobotocore) talks to it exactly as to AWS or MinIO. ``moto[server]``
is in the dev extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def start_s3(bucket: str) -> tuple[str, Callable[[], None]]:
    """Start the server and create `bucket`: (endpoint URL, stop)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client(url).create_bucket(Bucket=bucket)
    return url, server.stop


def client(endpoint_url: str) -> Any:
    """A plain (blocking) boto3 client of the server, for a test to look inside the bucket."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )

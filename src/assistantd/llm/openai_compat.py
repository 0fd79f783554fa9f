"""A backend for any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, llama-server, Ollama...).

The connection lives here: one pooled `httpx.AsyncClient`, retries with backoff before the
response starts, and the mapping of upstream failures to `ModelError`s. The wire format is
in `openai_wire.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..core.metrics import UPSTREAM_RETRIES
from .base import (
    ChatRequest,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelInvalidPrompt,
    ModelRateLimited,
    Usage,
)
from .openai_wire import (
    ChunkParser,
    LineSplitter,
    SSEDecoder,
    build_chat_completions_body,
    prompt_image_tokens,
    prompt_text,
)

# Statuses worth another try: the request may succeed unchanged a moment later.
_RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF_SECONDS = 8.0
# A retry-after longer than this is not waited for in-line; we fall back to our own backoff.
_MAX_RETRY_AFTER_SECONDS = 60.0


class OpenAICompatBackend(ModelBackend):
    """Streams chat completions from `{base_url}/chat/completions`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        *,
        context_window: int | None = None,
        initial_backoff: float = 0.5,
        supports_images: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.supports_images = supports_images
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        if context_window is not None:
            self.context_window = context_window
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._url = f"{self.base_url}/chat/completions"
        self._client = httpx.AsyncClient(
            headers=headers,
            # `timeout` bounds each wait (connect, each read between chunks), not the whole
            # response: a long answer that keeps streaming is fine.
            timeout=httpx.Timeout(timeout),
            # No cap of our own: each generating run holds one connection for its whole
            # answer, and the runs are already capped (ASSISTANTD_RUN_CONCURRENCY). A cap
            # below that made the runs over it wait for a connection (1,000 streams with a
            # cap of 512: 488 got no token until others ended). Idle connections close
            # after httpx's keep-alive expiry (5 s), so a burst does not stay allocated.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        body = build_chat_completions_body(request)
        response = await self._open(body)
        try:
            parser = ChunkParser()
            if response.headers.get("content-type", "").startswith("application/json"):
                # An upstream that ignores `stream: true` answers with one whole completion.
                payload = await self._read_json(response)
                for event in parser.feed(payload):
                    yield event
            else:
                async for chunk in self._chunks(response):
                    for event in parser.feed(chunk):
                        yield event
                if parser.finish_reason is None:
                    raise self._error(
                        "ended the stream before the response finished "
                        "(no finish_reason and no [DONE]); the upstream may have crashed"
                    )
            for event in parser.finish(self._estimate_usage(request, parser)):
                yield event
        finally:
            # Also on early close: hands the connection back (or drops it) at once.
            await response.aclose()

    def _estimate_usage(self, request: ChatRequest, parser: ChunkParser) -> Usage:
        return Usage(
            prompt_tokens=self.count_tokens(prompt_text(request)) + prompt_image_tokens(request),
            completion_tokens=self.count_tokens("".join(parser.text_parts)),
        )

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        decoder = SSEDecoder()
        splitter = LineSplitter()
        try:
            chunks = response.aiter_bytes()
            async for chunk in chunks:
                for line in splitter.feed(chunk):
                    data = decoder.feed_line(line)
                    if data is None:
                        continue
                    if data.strip() == "[DONE]":
                        await self._drain(chunks)
                        return
                    yield self._decode(data)
            for line in [*splitter.flush(), ""]:
                data = decoder.feed_line(line)
                if data is not None and data.strip() != "[DONE]":
                    yield self._decode(data)
        except httpx.TimeoutException as exc:
            raise self._error(
                f"timed out after {self.timeout:g}s waiting for the next chunk of the response"
            ) from exc
        except httpx.TransportError as exc:
            raise ModelError(
                f"The connection to the model backend broke mid-response ({type(exc).__name__})",
                detail=f"connection to upstream {self._url} broke mid-response: {exc!r}",
            ) from exc

    @staticmethod
    async def _drain(lines: AsyncIterator[bytes]) -> None:
        # Reading the body to its end is what lets httpx keep the connection for the next
        # request; [DONE] is the last event, so there is at most a chunk terminator left.
        # A server that keeps the stream open past [DONE] just loses its connection.
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(1.0):
                async for _ in lines:
                    pass

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise self._error(f"sent a chunk that is not JSON: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise self._error(f"sent a chunk that is not an object: {data[:200]!r}")
        return chunk

    async def _read_json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            raw = await response.aread()
        except httpx.TimeoutException as exc:
            raise self._error(f"timed out after {self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise ModelError(
                f"The connection to the model backend broke ({type(exc).__name__})",
                detail=f"connection to upstream {self._url} broke: {exc!r}",
            ) from exc
        return self._decode(raw.decode("utf-8", errors="replace"))

    async def _open(self, body: dict[str, Any]) -> httpx.Response:
        """Send the request and return a 2xx response whose body is not read yet.

        Retries happen only here, before any byte of the answer reached the caller.
        """
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._client.send(
                    self._client.build_request("POST", self._url, json=body), stream=True
                )
            except httpx.ConnectTimeout as exc:
                if last:
                    waited = f"timed out after {self.timeout:g}s ({attempts} attempts)"
                    raise ModelError(
                        f"Could not connect to the model backend: {waited}",
                        detail=f"could not connect to upstream {self._url}: {waited}",
                    ) from exc
                UPSTREAM_RETRIES.labels("connect_timeout").inc()
                await asyncio.sleep(self._backoff(attempt))
                continue
            except httpx.TimeoutException as exc:
                # The upstream accepted the request but said nothing for `timeout` seconds;
                # trying again would multiply the wait, so fail now.
                raise self._error(f"timed out after {self.timeout:g}s without answering") from exc
            except httpx.TransportError as exc:
                if last:
                    raise ModelError(
                        f"Could not reach the model backend ({attempts} attempts): "
                        f"{type(exc).__name__}",
                        detail=f"could not reach upstream {self._url} ({attempts} attempts): {exc!r}",
                    ) from exc
                UPSTREAM_RETRIES.labels("connect").inc()
                await asyncio.sleep(self._backoff(attempt))
                continue

            if response.is_success:
                return response
            try:
                detail = await self._error_detail(response)
            finally:
                await response.aclose()
            status = response.status_code
            if status in _RETRYABLE_STATUSES and not last:
                UPSTREAM_RETRIES.labels(str(status)).inc()
                await asyncio.sleep(self._retry_delay(response, attempt))
                continue
            raise self._status_error(status, detail, attempt + 1)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    def _error(self, what: str, kind: type[ModelError] = ModelError) -> ModelError:
        """`what` happened at the upstream: the client reads "The model backend <what>", the
        server log (`detail`) also names the upstream's URL, which clients must not see."""
        return kind(f"The model backend {what}", detail=f"upstream {self._url} {what}")

    def _status_error(self, status: int, detail: str, attempts: int) -> ModelError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if status == 429:
            return self._error(f"answered 429 (rate limited){tries}: {detail}", ModelRateLimited)
        if status in (400, 413, 422):
            return self._error(f"rejected the request ({status}): {detail}", ModelInvalidPrompt)
        if status in (401, 403):
            return self._error(
                f"refused our credentials ({status}): {detail}; "
                "check the API key configured for this model"
            )
        if status == 404:
            return self._error(f"answered 404: {detail}; check the base URL and model name")
        return self._error(f"answered {status}{tries}: {detail}")

    @staticmethod
    async def _error_detail(response: httpx.Response) -> str:
        try:
            raw = await response.aread()
        except httpx.HTTPError:
            return response.reason_phrase or "no details"
        text = raw.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            return text.strip()[:500] or response.reason_phrase or "no details"
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(payload, dict) and payload.get("message"):
            return str(payload["message"])
        return text.strip()[:500]

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": never less than half the step, so clients that
        # failed together spread out without any of them retrying instantly.
        step = min(_MAX_BACKOFF_SECONDS, self.initial_backoff * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        delay = _parse_retry_after(response.headers)
        if delay is not None and 0 <= delay <= _MAX_RETRY_AFTER_SECONDS:
            return delay
        return self._backoff(attempt)


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait per `retry-after-ms` (OpenAI's) or `retry-after` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.timestamp() - time.time()

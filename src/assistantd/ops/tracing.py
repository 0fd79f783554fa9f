"""OpenTelemetry traces: a span per HTTP request, per run (each execution segment), per
model call (with its token counts) and per server-side tool call.

Configured by the OpenTelemetry SDK's own standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` …), which the SDK reads
itself: this module only looks whether an OTLP endpoint (or `OTEL_TRACES_EXPORTER=otlp`) is
set. When none is, the SDK is never imported and every function here returns at once on
`_tracer is None`: tracing then costs one global lookup per call site.

Spans are exported over OTLP/HTTP with protobuf (`opentelemetry-exporter-otlp-proto-http`);
`OTEL_EXPORTER_OTLP_PROTOCOL=grpc` uses the gRPC exporter if that package is installed.
The provider is this module's own, not the API's global one, so a process may configure
and shut tracing down more than once (the tests do).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from assistantd.ops import context

log = logging.getLogger("assistantd.tracing")

_tracer: Any = None
_provider: Any = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return exporter in ("otlp", "console") or bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporter(environ: Mapping[str, str]) -> Any:
    if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", ""
    )
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as Grpc,
            )
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc, but opentelemetry-exporter-otlp-proto-grpc "
                "is not installed: exporting over HTTP/protobuf instead"
            )
        else:
            return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Start exporting spans if the OTEL_* variables ask for it; True if they do."""
    global _tracer, _provider
    if _tracer is not None or not wanted(environ):
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "assistantd"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    _provider, _tracer = provider, provider.get_tracer("assistantd")
    log.info("exporting traces (OpenTelemetry)")
    return True


def shutdown() -> None:
    """Export what is pending and stop."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


# -- spans ---------------------------------------------------------------------------------


def start_span(name: str, attributes: dict[str, Any] | None = None, kind: Any = None) -> Any:
    """A started span, child of the current one (not made current); None when off."""
    if _tracer is None:
        return None
    if kind is None:
        return _tracer.start_span(name, attributes=attributes)
    return _tracer.start_span(name, attributes=attributes, kind=kind)


def set_attribute(span: Any, key: str, value: Any) -> None:
    if span is not None:
        span.set_attribute(key, value)


def end(span: Any, error: str | None = None) -> None:
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def start_request(method: str, headers: list[tuple[bytes, bytes]]) -> tuple[Any, Any]:
    """A server span for a request (continuing a `traceparent` the client sent), made the
    current span of the request's task; returns (span, token for `end_request`)."""
    if _tracer is None:
        return None, None
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace

    carrier = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in headers
        if k in (b"traceparent", b"tracestate")
    }
    parent = propagate.extract(carrier) if carrier else None
    span = _tracer.start_span(
        method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": method},
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_request(span: Any, token: Any, method: str, route: str, status: int) -> None:
    if span is None:
        return
    from opentelemetry import context as otel_context

    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    end(span, error=str(status) if status >= 500 else None)
    otel_context.detach(token)


def start_run(run_id: str, run: dict[str, Any]) -> Any:
    """The span of one execution of a run, made current for the rest of the executing task
    (its model and tool calls become its children)."""
    if _tracer is None:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    span = _tracer.start_span(
        "run",
        attributes={
            "assistantd.run_id": run_id,
            "assistantd.thread_id": str(run.get("thread_id")),
            "assistantd.assistant_id": str(run.get("assistant_id")),
            "assistantd.model": str(run.get("model")),
            "assistantd.project": context.project.get() or "none",
        },
    )
    otel_context.attach(trace.set_span_in_context(span))
    return span


def end_run(span: Any, status: str) -> None:
    if span is None:
        return
    span.set_attribute("assistantd.run.status", status)
    end(span, error=status if status == "failed" else None)


def start_model_call(model: str, upstream_model: str, project: str) -> Any:
    if _tracer is None:
        return None
    return _tracer.start_span(
        f"chat {model}",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "assistantd.upstream_model": upstream_model,
            "assistantd.project": project,
        },
    )


def model_usage(span: Any, finished: Any) -> None:
    if span is None:
        return
    span.set_attribute("gen_ai.usage.input_tokens", finished.usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", finished.usage.completion_tokens)
    span.set_attribute("gen_ai.response.finish_reasons", [finished.reason])

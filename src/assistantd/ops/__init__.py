"""Operations: health and readiness, Prometheus metrics, structured logs, traces, backup and
restore, graceful shutdown. Everything here observes the rest from its edges (the HTTP
middleware, wrappers around the event bus, the model router, the sandbox and the server
tools); see the README's "Operations"."""

"""code_interpreter engine: stateful, isolated Python sessions keyed by thread id."""

from assistantd.sandbox.base import (
    CodeSandbox,
    ExecutionEvent,
    ExecutionResult,
    InputFile,
    LogChunk,
    OutputFile,
    SandboxClosed,
    SandboxError,
    SandboxUnavailable,
)
from assistantd.sandbox.bubblewrap import BubblewrapSandbox

__all__ = [
    "BubblewrapSandbox",
    "CodeSandbox",
    "ExecutionEvent",
    "ExecutionResult",
    "InputFile",
    "LogChunk",
    "OutputFile",
    "SandboxClosed",
    "SandboxError",
    "SandboxUnavailable",
]

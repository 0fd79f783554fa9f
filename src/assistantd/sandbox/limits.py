"""The resource limits of one code session, shared by every launcher."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What one session may use; the app builds it from its `sandbox_*` settings.

    `cpu_seconds` is RLIMIT_CPU for each process of the session, i.e. the CPU budget of the
    kernel over the session's whole life (the wall `timeout_seconds` bounds one execution).
    """

    timeout_seconds: float = 60.0
    memory_mb: int = 1024
    disk_mb: int = 512
    max_processes: int = 64
    cpu_seconds: int = 3600
    max_output_chars: int = 20_000

    def prlimit_args(self) -> list[str]:
        """`prlimit` options that apply these limits to the launched process tree."""
        memory = self.memory_mb * 1024 * 1024
        return [
            f"--as={memory}",
            f"--nproc={self.max_processes}",
            f"--cpu={self.cpu_seconds}",
            # One file can never be bigger than the whole quota; the tmpfs size is the real cap.
            f"--fsize={self.disk_mb * 1024 * 1024}",
            "--core=0",
            "--nofile=1024",
        ]

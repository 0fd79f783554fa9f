"""The resource limits of one code session, shared by every launcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """What the server accepts from a kernel in one execution, whatever the kernel does.

    The kernel is told these and stays within them on its own (extra figures and files are
    reported as not kept); a kernel that goes past them anyway, e.g. because the user's code
    wrote forged frames to the protocol pipe, is killed and the execution ends in an error.
    """

    max_frame_bytes: int = 1024 * 1024
    max_frames: int = 20_000
    max_images: int = 10
    max_files: int = 10
    max_file_bytes: int = 32 * 1024 * 1024

    def kernel_config(self) -> dict[str, Any]:
        """The part of the kernel's start-up config that tells it these limits."""
        return {
            "max_frames": self.max_frames,
            "max_images": self.max_images,
            "max_files": self.max_files,
            "max_file_bytes": self.max_file_bytes,
        }


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
    output: OutputLimits = field(default_factory=OutputLimits)

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

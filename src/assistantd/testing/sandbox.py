"""What sandbox tests attack with: the installed sandbox, a planted secret, forged frames."""

from __future__ import annotations

from pathlib import Path

from assistantd.core.settings import Settings

# The installed sandbox, where the server would look (ASSISTANTD_SANDBOX_DIR or .env; None =
# the default).
SANDBOX_DIR = Settings().sandbox_dir

# Planted in the server's environment before any kernel starts; must never be seen inside.
SECRET = "sk-assistantd-test-secret-3f9c"

# Defines send(header, blobs) that writes a frame straight to the protocol pipe.
FORGE = """
import gc, json, os, struct
_channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
def raw(data):
    view = memoryview(data)
    while view:
        view = view[os.write(_channel._out, view):]
def send(header, blobs=()):
    body = json.dumps({**header, "blobs": header.get("blobs", [len(b) for b in blobs])}).encode()
    raw(struct.pack(">I", len(body)) + body + b"".join(blobs))
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


ATTACKS = {
    # The probe of issue 12: 100 frames of 1,000,000 characters each.
    "100M characters of logs": "for _ in range(100):\n    send({'op': 'stream', 'text': 'x' * 1_000_000})",
    "too many frames": "for _ in range(100_000):\n    send({'op': 'stream', 'text': ''})",
    "a 2 GB header": "raw(struct.pack('>I', 2**31 - 1) + b'{' * 65536)",
    "a header over the frame limit": "send({'op': 'stream', 'text': 'y' * 2_000_000})",
    "blobs on a stream frame": "send({'op': 'stream', 'text': 'a', 'blobs': [10]}, [b'0' * 10])",
    "a 1 GB blob": "send({'op': 'result', 'images': 1, 'files': [], 'blobs': [2**30]})\nraw(b'0' * 2**20)",
    "a thousand blobs": "send({'op': 'result', 'images': 0, 'files': ['f'] * 1000, 'blobs': [1] * 1000})",
    "too many images": "send({'op': 'result', 'images': 5}, [b'png'] * 5)",
    "a huge tail": "send({'op': 'result', 'images': 0, 'files': [], 'tail': 'z' * 900_000})",
}

"""Annotations of assistant text: `【n:m†source】` file citations and `sandbox:/mnt/data/…` paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CITATION = re.compile(r"【(\d+):(\d+)†[^】\n]{0,200}】")
SANDBOX_PATH = re.compile(r"sandbox:/mnt/data/[^\s)\]\"'<>`]+")


@dataclass
class Annotator:
    """Finds annotations in a message's text as it grows, each exactly once.

    `citations` maps (file_search call number in the run, result number) → file id;
    `sandbox_files` maps a path under /mnt/data → file id of what the code wrote there.
    """

    citations: dict[tuple[int, int], str] = field(default_factory=dict)
    sandbox_files: dict[str, str] = field(default_factory=dict)
    found: list[dict[str, Any]] = field(default_factory=list)
    _seen: set[tuple[int, int]] = field(default_factory=set)

    @property
    def active(self) -> bool:
        """Whether any annotation can be found at all (a citation or a file to point at)."""
        return bool(self.citations or self.sandbox_files)

    def scan(self, text: str, final: bool = False) -> list[dict[str, Any]]:
        """New annotations in `text`; a path at the very end waits (it may still grow)
        unless `final`."""
        new: list[dict[str, Any]] = []
        for m in CITATION.finditer(text):
            file_id = self.citations.get((int(m.group(1)), int(m.group(2))))
            if file_id is None or (m.start(), m.end()) in self._seen:
                continue
            new.append(
                self._add(m, {"type": "file_citation", "file_citation": {"file_id": file_id}})
            )
        for m in SANDBOX_PATH.finditer(text):
            if (m.start(), m.end()) in self._seen or (m.end() == len(text) and not final):
                continue
            path = m.group(0).rstrip(".,;:!?")
            name = path.removeprefix("sandbox:/mnt/data/")
            file_id = self.sandbox_files.get(name)
            if file_id is None:
                continue
            end = m.start() + len(path)
            self._seen.add((m.start(), m.end()))
            entry = {
                "index": len(self.found),
                "type": "file_path",
                "text": path,
                "start_index": m.start(),
                "end_index": end,
                "file_path": {"file_id": file_id},
            }
            self.found.append(entry)
            new.append(entry)
        return new

    def _add(self, m: re.Match[str], kind: dict[str, Any]) -> dict[str, Any]:
        self._seen.add((m.start(), m.end()))
        entry = {
            "index": len(self.found),
            "type": kind["type"],
            "text": m.group(0),
            "start_index": m.start(),
            "end_index": m.end(),
            **{k: v for k, v in kind.items() if k != "type"},
        }
        self.found.append(entry)
        return entry

    def all(self) -> list[dict[str, Any]]:
        """The annotations of the finished text, as the Message object carries them."""
        return [
            {k: v for k, v in a.items() if k != "index"}
            for a in sorted(self.found, key=lambda a: a["start_index"])
        ]

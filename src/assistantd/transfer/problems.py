"""Where in a dump a problem is, and the error that lists them."""

from __future__ import annotations

from dataclasses import dataclass

#: Problems listed before reading stops (a wholly wrong dump would list thousands).
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Where:
    """A file of the dump and a path inside its JSON (`messages[3].content[0].text`)."""

    file: str
    pointer: str = ""

    def at(self, key: str | int) -> Where:
        if isinstance(key, int):
            return Where(self.file, f"{self.pointer}[{key}]")
        return Where(self.file, f"{self.pointer}.{key}" if self.pointer else key)

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer}" if self.pointer else self.file


class Invalid(Exception):
    """One problem of one object."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class DumpError(Exception):
    """The dump cannot be imported; nothing was written. `problems` names each file and field."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        more = f"\n… and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(
            "the dump cannot be imported (nothing was written):\n"
            + "\n".join(f"  {p}" for p in shown)
            + more
        )
        self.problems = problems

from __future__ import annotations

from assistantd.core.repository import Repository
from assistantd.threads.models import ThreadRow


class ThreadRepository(Repository[ThreadRow]):
    model = ThreadRow
    kind = "thread"

from __future__ import annotations

from assistantd.assistants.models import AssistantRow
from assistantd.core.repository import Repository


class AssistantRepository(Repository[AssistantRow]):
    model = AssistantRow
    kind = "assistant"

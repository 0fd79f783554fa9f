from __future__ import annotations

from assistantd.core.repository import Repository
from assistantd.messages.models import MessageRow


class MessageRepository(Repository[MessageRow]):
    model = MessageRow
    kind = "message"

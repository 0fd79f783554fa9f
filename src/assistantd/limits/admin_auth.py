"""The admin caller of `/v1/organization/*` (stand-in until the admin keys land: any valid key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from assistantd.api.deps import Caller
from assistantd.keys.service import Principal


async def _admin(caller: Caller) -> Principal:
    return caller


AdminCaller = Annotated[Principal, Depends(_admin)]

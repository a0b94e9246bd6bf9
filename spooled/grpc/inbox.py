"""A ProcessJobs stream's requests, taken in turns: each turn is every request that arrived since the last one,
so a session answers them together (spooled.grpc.process). No Django here: bench/grpc_floor.py reuses it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

# Requests one ProcessJobs turn answers together at most.
MAX_TURN = 1000


class Inbox:
    """Reads the stream on its own task; `next_turn()` waits for the first request, then takes all that wait."""

    def __init__(self, requests: AsyncIterator[Any], max_turn: int = MAX_TURN) -> None:
        self.max_turn = max_turn
        self._queue: deque[Any] = deque()  # None: the client is done writing
        self._arrived = asyncio.Event()
        self._done = False
        self._reader = asyncio.ensure_future(self._read(requests))

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                self._queue.append(request)
                self._arrived.set()
        finally:
            self._queue.append(None)
            self._arrived.set()

    async def next_turn(self) -> list[Any] | None:
        """The requests that arrived since the last turn (at least one); None once the client is done."""
        while not self._done and not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        turn: list[Any] = []
        while self._queue and len(turn) < self.max_turn:
            request = self._queue.popleft()
            if request is None:
                self._done = True
                break
            turn.append(request)
        return turn or None

    def close(self) -> None:
        self._reader.cancel()

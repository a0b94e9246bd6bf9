"""ProcessJobs takes its requests in turns (spooled.grpc.inbox): all that arrived since the last turn, together."""

from __future__ import annotations

import asyncio

from spooled.grpc.inbox import Inbox


def test_a_turn_is_everything_that_arrived_and_the_end_comes_after_the_last_turn():
    async def scenario() -> list:
        gate = asyncio.Event()

        async def requests():
            yield "a"
            await gate.wait()  # the server answers the first turn before the rest arrive
            for name in ("b", "c", "d"):
                yield name

        inbox = Inbox(requests(), max_turn=2)
        turns = [await inbox.next_turn()]
        gate.set()
        await asyncio.sleep(0)  # let the reader take in b, c, d and the end
        await asyncio.sleep(0)
        while (turn := await inbox.next_turn()) is not None:
            turns.append(turn)
        assert await inbox.next_turn() is None
        inbox.close()
        return turns

    assert asyncio.run(scenario()) == [["a"], ["b", "c"], ["d"]]


def test_a_client_that_writes_nothing_ends_at_once():
    async def scenario() -> object:
        async def requests():
            return
            yield

        inbox = Inbox(requests())
        try:
            return await inbox.next_turn()
        finally:
            inbox.close()

    assert asyncio.run(scenario()) is None

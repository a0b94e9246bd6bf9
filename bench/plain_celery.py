"""Baseline: plain Celery with one task per HTTP delivery and a pooled client per worker process.

`celery -A bench.plain_celery worker -Q plain_bench -c 2`.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
from celery import Celery

app = Celery("plain_bench", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13"))
app.conf.update(
    task_default_queue="plain_bench",
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
)

_state: dict = {}


async def _post(url: str, body: str) -> int:
    if "session" not in _state:
        _state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    async with _state["session"].post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        await resp.read()
        return resp.status


@app.task(name="plain.post")
def post(url: str, body: str) -> int:
    if "loop" not in _state or _state.get("pid") != os.getpid():
        _state.clear()
        _state["pid"] = os.getpid()
        _state["loop"] = asyncio.new_event_loop()
    return _state["loop"].run_until_complete(_post(url, body))

"""A local aiohttp endpoint for the benchmarks: counts deliveries and the enqueue -> start latency.

Run as `python bench/endpoint.py PORT`. POST anything: 200. A JSON body whose payload carries `t` (unix seconds
at enqueue) adds a latency sample. GET /stats -> {"count", "latencies_ms"}; POST /reset clears.
"""

from __future__ import annotations

import json
import sys
import time

from aiohttp import web

state = {"count": 0, "lat": []}


async def hook(request: web.Request) -> web.Response:
    now = time.time()
    body = await request.read()
    state["count"] += 1
    if b'"t"' in body:
        try:
            data = json.loads(body)
            t = (data.get("payload") or {}).get("t")
            if t:
                state["lat"].append((now - float(t)) * 1000)
        except ValueError:
            pass
    return web.Response(text='{"ok":true}', content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"count": state["count"], "latencies_ms": state["lat"]})


async def reset(request: web.Request) -> web.Response:
    state["count"] = 0
    state["lat"] = []
    return web.json_response({"ok": True})


app = web.Application()
app.add_routes([web.post("/hook", hook), web.get("/stats", stats), web.post("/reset", reset)])

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)

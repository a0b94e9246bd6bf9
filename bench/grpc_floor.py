"""The transport's floor for bench/grpc.py: ProcessJobs answered from memory (no database, no Django), taking
requests in turns as the real server does (spooled.grpc.inbox), so the same 4 clients measure what grpcio alone
costs per job here. `python -m bench.grpc_floor JOBS --port PORT` serves JOBS prebuilt jobs, shaped as grpcserve's."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import deque
from typing import Any

from google.protobuf import struct_pb2

from spooled.grpc import spooled_pb2 as pb
from spooled.grpc import spooled_pb2_grpc as pb_grpc
from spooled.grpc.inbox import Inbox

COMPLETED = pb.ProcessResponse(complete=pb.CompleteResponse(success=True))
NO_JOBS = pb.ProcessResponse(error=pb.ErrorResponse(code="NO_JOBS", message="No more jobs available"))


def _struct(value: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _jobs(count: int) -> deque[pb.ProcessResponse]:
    now = int(time.time())
    stamp = {"seconds": now, "nanos": 123_456_000}
    return deque(
        pb.ProcessResponse(
            job=pb.Job(
                id=f"job_{uuid.uuid4().hex[:26]}",
                organization_id="ws_floor",
                queue_name="bench-batch",
                status=pb.JOB_STATUS_PROCESSING,
                payload=_struct({"n": i}),
                max_retries=2,
                timeout_seconds=300,
                created_at=stamp,
                scheduled_at=stamp,
                started_at=stamp,
                lease_expires_at=stamp,
                lease_id=uuid.uuid4().hex,
            )
        )
        for i in range(count)
    )


class FloorService(pb_grpc.QueueServiceServicer):
    def __init__(self, count: int) -> None:
        self.jobs = _jobs(count)

    async def ProcessJobs(self, request_iterator: Any, context: Any) -> Any:
        inbox = Inbox(request_iterator)
        try:
            while (turn := await inbox.next_turn()) is not None:
                kinds = [request.WhichOneof("request") for request in turn]
                out = [COMPLETED] * kinds.count("complete")
                for request, kind in zip(turn, kinds, strict=True):
                    if kind == "dequeue":
                        wanted = request.dequeue.batch_size or 1
                        share = [self.jobs.popleft() for _ in range(min(wanted, len(self.jobs)))]
                        out += share + ([NO_JOBS] if len(share) < wanted else [])
                for response in out:
                    yield response
        finally:
            inbox.close()


async def serve(port: int, count: int) -> None:
    import grpc

    server = grpc.aio.server()
    pb_grpc.add_QueueServiceServicer_to_server(FloorService(count), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", type=int)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.jobs))

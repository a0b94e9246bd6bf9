"""Spooled's gRPC services (package spooled.v1) on grpc.aio: `python manage.py grpcserve` (the Procfile's `grpc`
process, GRPC_PORT, default 50051).

The event loop holds every call; database work runs on a small pool of threads (SPINDLE_GRPC_DB_THREADS,
default 4), each with its own connection. An idle StreamJobs waits on the loop, not on a thread: it polls the
flag that this process's shared LISTEN connection sets when its queue gets a job (the engine's NOTIFY), and
re-tries its claim at least every STREAM_RETRY_S. Streams re-check their credential every
SPINDLE_SSE_AUTH_RECHECK_S, as the event streams do. Auth is the `x-api-key` metadata (an API key or an access
token from a login). Refusals carry the status codes the SDK maps back to its errors (spooled.grpc.convert).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from django.db import InterfaceError, OperationalError, connection

from config import db
from config.exceptions import ApplicationError
from jobs.services.dispatch import NOTIFY_CHANNEL
from jobs.services.streams import AUTH_RECHECK_S, stream_setting
from spooled.grpc import ops
from spooled.grpc import spooled_pb2 as pb
from spooled.grpc import spooled_pb2_grpc as pb_grpc
from spooled.grpc.convert import GrpcError, grpc_error
from spooled.grpc.inbox import Inbox
from spooled.grpc.process import Session
from spooled.realtime.auth import still_authorized

logger = logging.getLogger(__name__)
T = TypeVar("T")
STREAM_RETRY_S = 2.0
WAKE_POLL_S = 0.05


def _guarded(fn: Callable[..., T], *args: Any) -> T:
    """Run on a database thread: domain errors become GrpcErrors; a broken connection is dropped."""
    try:
        return fn(*args)
    except ApplicationError as exc:
        raise grpc_error(exc) from None
    except (OperationalError, InterfaceError):
        logger.warning("database unavailable for a gRPC call", exc_info=True)
        connection.close()
        raise GrpcError(grpc.StatusCode.UNAVAILABLE, "The database is unavailable; try again.") from None
    except GrpcError:
        raise
    except Exception:
        logger.exception("gRPC call failed")
        raise GrpcError(grpc.StatusCode.INTERNAL, "Internal error.") from None


def _token(context: grpc.aio.ServicerContext) -> str:
    return next((v for k, v in context.invocation_metadata() or () if k == "x-api-key"), "")


class Base:
    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, _guarded, fn, *args)

    async def authenticated(self, context: grpc.aio.ServicerContext, work: Callable[[Any], T]) -> T:
        """`work(workspace)` on a database thread once the call's x-api-key holds; a refusal aborts the call."""
        metadata = context.invocation_metadata()
        try:
            return await self.db(lambda: work(ops.authenticate(metadata).workspace))
        except GrpcError as exc:
            await abort(context, exc)
            raise AssertionError("unreachable") from None

    async def unary(self, context: grpc.aio.ServicerContext, fn: Callable[..., T], request: Any) -> T:
        return await self.authenticated(context, lambda workspace: fn(workspace, request))


def unary_rpc(op: Callable[[Any, Any], Any]) -> Callable[..., Awaitable[Any]]:
    """A unary RPC that is only its op: `op(workspace, request)` on a database thread, after authentication (the
    servicer's method for each RPC whose answer the op builds whole)."""

    async def rpc(self: Base, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.unary(context, op, request)

    return rpc


async def abort(context: grpc.aio.ServicerContext, exc: GrpcError) -> None:
    if exc.retry_after is not None:
        context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
    await context.abort(exc.code, exc.message)


class QueueService(Base, pb_grpc.QueueServiceServicer):
    Enqueue = unary_rpc(ops.enqueue)
    Complete = unary_rpc(ops.settle)
    Fail = unary_rpc(ops.settle)
    RenewLease = unary_rpc(ops.renew)
    GetJob = unary_rpc(ops.get_job)
    GetQueueStats = unary_rpc(ops.queue_stats)

    async def Dequeue(self, request: pb.DequeueRequest, context: Any) -> pb.DequeueResponse:
        return pb.DequeueResponse(jobs=await self.unary(context, ops.dequeue, request))

    async def _open(self, context: Any, check: Callable[[Any], T] | None = None) -> tuple[Any, T | None]:
        return await self.authenticated(
            context, lambda workspace: (workspace, check(workspace) if check else None)
        )

    async def _recheck(self, context: Any, workspace_id: str, checked: float) -> float:
        """Every SPINDLE_SSE_AUTH_RECHECK_S: the credential still holds, else the stream ends UNAUTHENTICATED."""
        if time.monotonic() - checked < stream_setting("SPINDLE_SSE_AUTH_RECHECK_S", AUTH_RECHECK_S):
            return checked
        if not await self.db(still_authorized, _token(context), workspace_id):
            await abort(context, GrpcError(grpc.StatusCode.UNAUTHENTICATED, "The x-api-key no longer holds."))
        return time.monotonic()

    async def StreamJobs(self, request: pb.StreamJobsRequest, context: Any) -> AsyncIterator[pb.Job]:
        def check(workspace: Any) -> tuple[str | None, str | None]:
            ops.required(request.worker_id, "worker_id")
            ops.lease_ms(request.lease_duration_secs)
            return ops.stream_queue_id(workspace, request), ops.claim_worker(workspace, request.worker_id)

        workspace, found = await self._open(context, check)
        queue_id, worker = found or (None, None)
        waker = await Waker.open(self, queue_id)
        checked = time.monotonic()
        try:
            while True:
                checked = await self._recheck(context, workspace.id, checked)
                waker.clear()
                try:
                    jobs = await self.db(ops.stream_claim, workspace, request, worker)
                except GrpcError as exc:
                    await abort(context, exc)
                for job in jobs:
                    yield job
                if not jobs:
                    await waker.wait(STREAM_RETRY_S)
        finally:
            await waker.close()

    async def ProcessJobs(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.ProcessResponse]:
        workspace, _ = await self._open(context)
        session = Session(workspace)
        inbox = Inbox(request_iterator)
        checked = time.monotonic()
        try:
            while (turn := await inbox.next_turn()) is not None:
                checked = await self._recheck(context, workspace.id, checked)
                try:
                    responses = await self.db(session.handle, turn)
                except GrpcError as exc:
                    await abort(context, exc)
                for response in responses:
                    yield response
        finally:
            inbox.close()


class Waker:
    """StreamJobs' wake-up: the shared listener's flag for its queue, polled on the loop (no thread waits)."""

    def __init__(self, runner: Base, queue_id: str | None, listener: Any, flag: Any) -> None:
        self.runner, self.queue_id, self.listener, self.flag = runner, queue_id, listener, flag

    @classmethod
    async def open(cls, runner: Base, queue_id: str | None) -> Waker:
        listener = db.backend().listener(NOTIFY_CHANNEL) if queue_id else None
        flag = await runner.db(listener.subscribe, queue_id) if listener else None
        return cls(runner, queue_id, listener, flag)

    def clear(self) -> None:
        if self.flag is not None:
            self.flag.clear()

    async def wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (self.flag is not None and self.flag.is_set()):
            await asyncio.sleep(WAKE_POLL_S)

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.unsubscribe(self.flag, self.queue_id)


class WorkerService(Base, pb_grpc.WorkerServiceServicer):
    Register = unary_rpc(ops.register)
    Heartbeat = unary_rpc(ops.heartbeat)
    Deregister = unary_rpc(ops.deregister)


async def serve(address: str, *, threads: int, grace_s: float = 5.0) -> None:
    """Serve until SIGTERM or SIGINT, then stop taking calls and give running ones `grace_s`."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc-db")
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_QueueServiceServicer_to_server(QueueService(executor), server)
    pb_grpc.add_WorkerServiceServicer_to_server(WorkerService(executor), server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise SystemExit(f"gRPC: cannot listen on {address} (in use? set GRPC_PORT)")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"Spooled gRPC (spooled.v1) listening on {address}", flush=True)
    await stopping.wait()
    await server.stop(grace_s)
    executor.shutdown(wait=False, cancel_futures=True)

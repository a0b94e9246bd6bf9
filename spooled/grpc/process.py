"""ProcessJobs, in batches (ROADMAP: a claim per message cannot reach the throughput goal).

The server hands a stream's session every request that has arrived since its last turn, and the session answers
them together: every complete and fail of the turn in one engine transaction per queue (jobs.services.pull
`jobs_ack`, the fenced batch outcome path), then every dequeue of the turn in one claim per queue, worker and
lease (`jobs_claim_pull`). Responses: the outcomes in request order (a lost lease answers `error` with code
LEASE_EXPIRED, as Spooled reports it in-band), then lease renewals, then each dequeue's jobs in request order
(one `job` each); a dequeue that got fewer jobs than its batch_size (none included) ends with `error` NO_JOBS, so
a client always knows when a dequeue has been answered in full.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Any

from accounts.models import Workspace
from config.exceptions import ApplicationError
from jobs.models import Job
from jobs.services import pull
from spooled.grpc import ops
from spooled.grpc import spooled_pb2 as pb
from spooled.grpc.convert import LEASE_EXPIRED, GrpcError, dict_of, grpc_error, job_fields

# How many job ids -> queue names a session remembers (the jobs it handed out and not yet settled).
KNOWN_JOBS = 10_000
# Every successful complete gets the same answer: one message, built once (never mutated).
COMPLETED = pb.ProcessResponse(complete=pb.CompleteResponse(success=True))


def _error(code: str, message: str) -> pb.ProcessResponse:
    return pb.ProcessResponse(error=pb.ErrorResponse(code=code, message=message))


def _refusal(exc: Exception) -> pb.ProcessResponse:
    if isinstance(exc, ApplicationError):
        exc = grpc_error(exc)
    assert isinstance(exc, GrpcError)
    code = "LEASE_EXPIRED" if exc.message == LEASE_EXPIRED else exc.code.name
    return _error(code, exc.message)


class Session:
    """One ProcessJobs stream of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.known: OrderedDict[str, str] = OrderedDict()  # job id -> queue name
        self.workers: dict[str, str | None] = {}  # worker id -> the registered worker it is, if any

    def handle(self, requests: list[pb.ProcessRequest]) -> list[pb.ProcessResponse]:
        settles = [
            (i, getattr(r, r.WhichOneof("request")))
            for i, r in enumerate(requests)
            if r.WhichOneof("request") in ("complete", "fail")
        ]
        answers: dict[int, pb.ProcessResponse] = {}
        answers.update(self._settle(settles))
        out = [answers[i] for i, _ in settles]
        for request in requests:
            kind = request.WhichOneof("request")
            if kind == "renew_lease":
                out.append(self._renew(request.renew_lease))
            elif kind is None:
                out.append(_error("INVALID_REQUEST", "Empty request"))
        dequeues = [r.dequeue for r in requests if r.WhichOneof("request") == "dequeue"]
        if dequeues:
            out += self._dequeue(dequeues)
        return out

    # -- outcomes ------------------------------------------------------------------------------------------

    def _settle(self, settles: list[tuple[int, Any]]) -> dict[int, pb.ProcessResponse]:
        answers: dict[int, pb.ProcessResponse] = {}
        unknown = {s.job_id for _, s in settles if s.job_id and s.job_id not in self.known}
        if unknown:
            found = Job.objects.filter(workspace=self.workspace, id__in=unknown).values_list(
                "id", "queue__name"
            )
            self._remember(dict(found))
        # A job settled twice in one turn (a retry after a stale lease, say) goes to a later round, in order.
        rounds: list[tuple[set[str], dict[str, list[tuple[int, pull.AckItem]]]]] = []
        for index, request in settles:
            try:
                item = self._ack_item(request)
            except GrpcError as exc:
                answers[index] = _refusal(exc)
                continue
            free = next((r for r in rounds if item.id not in r[0]), None)
            if free is None:
                free = (set(), defaultdict(list))
                rounds.append(free)
            free[0].add(item.id)
            free[1][self.known[item.id]].append((index, item))
        for _, batch in rounds:
            for queue_name, entries in batch.items():
                answers.update(self._ack(queue_name, entries))
        return answers

    def _ack_item(self, request: Any) -> pull.AckItem:
        ops.required(request.job_id, "job_id")
        ops.required(request.lease_id, "lease_id")
        if request.job_id not in self.known:
            raise GrpcError(ops.grpc.StatusCode.NOT_FOUND, "Job not found")
        if isinstance(request, pb.FailRequest):
            retry = request.retry if request.HasField("retry") else True
            error = ops.fail_error(request.error)
            return pull.AckItem(
                id=request.job_id, lease_token=request.lease_id, success=False, error=error, retry=retry
            )
        return pull.AckItem(
            id=request.job_id, lease_token=request.lease_id, success=True, result=dict_of(request.result)
        )

    def _ack(self, queue_name: str, entries: list[tuple[int, pull.AckItem]]) -> dict[int, pb.ProcessResponse]:
        try:
            _, lost = pull.jobs_ack(
                workspace=self.workspace, queue_name=queue_name, items=[i for _, i in entries]
            )
        except ApplicationError as exc:
            return {index: _refusal(exc) for index, _ in entries}
        lost_ids = set(lost)
        failed = [item.id for _, item in entries if not item.success and item.id not in lost_ids]
        states = (
            dict(
                (job_id, (state, run_at))
                for job_id, state, run_at in Job.objects.filter(id__in=failed).values_list(
                    "id", "state", "run_at"
                )
            )
            if failed
            else {}
        )
        answers = {}
        for index, item in entries:
            if item.id not in lost_ids:
                self.known.pop(item.id, None)  # settled: forgotten (a later settle looks it up again)
            if item.id in lost_ids:
                answers[index] = _error("LEASE_EXPIRED", LEASE_EXPIRED)
            elif item.success:
                answers[index] = COMPLETED
            else:
                answers[index] = pb.ProcessResponse(
                    fail=ops.fail_outcome(*states.get(item.id, ("failed", None)))
                )
        return answers

    def _renew(self, request: pb.RenewLeaseRequest) -> pb.ProcessResponse:
        try:
            return pb.ProcessResponse(renew_lease=ops.renew(self.workspace, request))
        except (GrpcError, ApplicationError) as exc:
            return _refusal(exc)

    # -- claims --------------------------------------------------------------------------------------------

    def _dequeue(self, requests: list[pb.DequeueRequest]) -> list[pb.ProcessResponse]:
        groups: dict[tuple[str, str, int], list[pb.DequeueRequest]] = defaultdict(list)
        out: list[pb.ProcessResponse] = []
        for request in requests:
            try:
                ops.required(request.worker_id, "worker_id")
                ops.queue_name_checked(request.queue_name)
                if not 0 <= request.batch_size <= ops.MAX_BATCH:
                    raise GrpcError(ops.INVALID, f"batch_size must be 1..{ops.MAX_BATCH}")
                ops.lease_ms(request.lease_duration_secs)
            except GrpcError as exc:
                out.append(_refusal(exc))
                continue
            groups[(request.queue_name, request.worker_id, request.lease_duration_secs)].append(request)
        for (queue_name, worker_id, lease_s), group in groups.items():
            wanted = sum(r.batch_size or 1 for r in group)
            try:
                jobs = self._claim(queue_name, worker_id, lease_s, wanted)
            except ApplicationError as exc:
                out += [_refusal(exc)] * len(group)
                continue
            start = 0
            for request in group:  # each request's share in order; one left short is told so
                share = jobs[start : start + (request.batch_size or 1)]
                start += len(share)
                out += share
                if len(share) < (request.batch_size or 1):
                    out.append(_error("NO_JOBS", "No more jobs available"))
        return out

    def _claim(self, queue_name: str, worker_id: str, lease_s: int, wanted: int) -> list[pb.ProcessResponse]:
        queue = ops.pull_queue_or_none(self.workspace, queue_name)
        if queue is None:
            return []
        if worker_id not in self.workers:
            self.workers[worker_id] = ops.claim_worker(self.workspace, worker_id)
        result = pull.jobs_claim_pull(
            workspace=self.workspace,
            queues=[queue],
            limit=wanted,
            lease_ms=ops.lease_ms(lease_s),
            worker_id=self.workers[worker_id],
        )
        self._remember({job.id: queue.name for job in result.jobs})
        return [pb.ProcessResponse(job=job_fields(job, queue_name=queue.name)) for job in result.jobs]

    def _remember(self, names: dict[str, str]) -> None:
        self.known.update(names)
        while len(self.known) > KNOWN_JOBS:
            self.known.popitem(last=False)

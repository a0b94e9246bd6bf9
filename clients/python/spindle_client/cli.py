"""The `spindle` command line: enqueue, list and inspect jobs, retry, the dead-letter queue, tail the event stream.

The key and the base URL come from `--key`/`--url` or SPINDLE_API_KEY/SPINDLE_URL. Lists print one line per
object, tab-separated (for `cut` and `awk`); `--json` prints JSON instead, one object per line for lists and the
tail (JSON Lines, for `jq`). API errors print their code, status and message on stderr and exit with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from spindle_client.client import Spindle
from spindle_client.errors import SpindleError
from spindle_client.models import Event, Job, Model, Queue, Schedule

STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled")


def _line(*cells: object) -> str:
    return "\t".join("-" if cell is None or cell == "" else str(cell) for cell in cells)


def job_line(job: Job) -> str:
    return _line(job.id, job.queue, job.state, f"{job.attempts}/{job.max_attempts}", job.name, job.created_at)


def event_line(event: Event) -> str:
    return _line(event.created_at, event.type, event.queue, event.job_id, event.id)


def schedule_line(schedule: Schedule) -> str:
    every = schedule.cron or f"every {schedule.interval_ms} ms"
    when = "paused" if schedule.paused else f"next {schedule.next_run_at}"
    return _line(schedule.name, every, schedule.queue, when)


def queue_line(queue: Queue) -> str:
    counts = " ".join(f"{state}={queue.counts.get(state, 0)}" for state in STATES)
    return _line(queue.name, queue.delivery, "paused" if queue.paused else "running", counts)


class Output:
    """Prints objects as lines or as JSON, flushing each (the tail runs into pipes)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def one(self, obj: Model, summary: Callable[[Any], str]) -> None:
        text = json.dumps(obj.to_dict(), indent=2) if self.as_json else summary(obj)
        print(text, flush=True)

    def many(self, objs: Iterable[Model], line: Callable[[Any], str]) -> None:
        for obj in objs:
            print(json.dumps(obj.to_dict()) if self.as_json else line(obj), flush=True)


def job_detail(job: Job) -> str:
    return "\n".join(
        f"{key}: {value if isinstance(value, str) else json.dumps(value)}"
        for key, value in job.to_dict().items()
    )


def _json_argument(text: str) -> Any:
    """The payload argument: JSON text, or `-` for JSON on stdin."""
    try:
        return json.loads(sys.stdin.read() if text == "-" else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _run(args: argparse.Namespace, spindle: Spindle, out: Output) -> None:
    command = (
        args.command if args.command not in ("jobs", "schedules", "queues") else f"{args.command} {args.sub}"
    )
    if command == "enqueue":
        job = spindle.enqueue(
            args.queue, args.payload, idempotency_key=args.idempotency_key, delay_ms=args.delay_ms,
            priority=args.priority, tags=args.tag, name=args.name,
        )  # fmt: skip
        out.one(job, job_line)
    elif command == "jobs ls":
        out.many(
            spindle.jobs(args.queue, state=args.state, tag=args.tag, name=args.name, limit=args.limit),
            job_line,
        )
    elif command == "jobs get":
        out.one(spindle.job(args.queue, args.id), job_detail)
    elif command == "retry":
        out.one(spindle.retry(args.queue, args.id), job_line)
    elif command == "cancel":
        out.one(spindle.cancel(args.queue, args.id), job_line)
    elif command == "dlq":
        out.many(spindle.dlq(args.queue, limit=args.limit), job_line)
    elif command == "tail":
        events = spindle.events(args.queue, last_event_id=args.last_event_id, timeout_s=args.timeout)
        for count, event in enumerate(events, start=1):
            out.many([event], event_line)
            if args.max_events and count >= args.max_events:
                return
    elif command == "schedules ls":
        out.many(spindle.schedules(limit=args.limit), schedule_line)
    elif command == "queues ls":
        out.many(spindle.queues(limit=args.limit), queue_line)


def _common() -> argparse.ArgumentParser:
    """The global options, accepted before or after the command (SUPPRESS: a later parser never resets them)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="base URL (default: $SPINDLE_URL or :8000)")
    common.add_argument(
        "--key", default=argparse.SUPPRESS, help="workspace API key (default: $SPINDLE_API_KEY)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return common


def _job_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    enqueue = commands.add_parser("enqueue", parents=[common], help="enqueue one job")
    enqueue.add_argument("queue")
    enqueue.add_argument("payload", type=_json_argument, help="the payload as JSON, or - for stdin")
    enqueue.add_argument("--idempotency-key", help="repeat-safe: the same key returns the first job")
    enqueue.add_argument("--delay-ms", type=int)
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--tag", action="append", help="a tag (repeatable)")
    enqueue.add_argument("--name")

    jobs = commands.add_parser("jobs", parents=[common], help="list or show jobs").add_subparsers(
        dest="sub", required=True
    )
    ls = jobs.add_parser("ls", parents=[common], help="jobs, newest first")
    ls.add_argument("--queue")
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--tag")
    ls.add_argument("--name")
    ls.add_argument("--limit", type=int, help="at most this many (default: all, page after page)")
    get = jobs.add_parser("get", parents=[common], help="one job in full")
    for name in ("retry", "cancel"):
        commands.add_parser(name, parents=[common], help=f"{name} one job")
    for parser in (get, commands.choices["retry"], commands.choices["cancel"]):
        parser.add_argument("queue")
        parser.add_argument("id")
    dlq = commands.add_parser("dlq", parents=[common], help="the queue's dead-letter queue")
    dlq.add_argument("queue")
    dlq.add_argument("--limit", type=int)


def parser() -> argparse.ArgumentParser:
    common = _common()
    root = argparse.ArgumentParser(prog="spindle", parents=[common], description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    _job_commands(commands, common)
    tail = commands.add_parser("tail", parents=[common], help="follow the event stream, one line per event")
    tail.add_argument("--queue", help="only this queue's events")
    tail.add_argument("--last-event-id", help="resume after this evt_… id")
    tail.add_argument("--max-events", type=int, help="stop after this many events")
    tail.add_argument("--timeout", type=float, help="stop after this many seconds")
    for noun in ("schedules", "queues"):
        sub = commands.add_parser(noun, parents=[common], help=f"list {noun}").add_subparsers(
            dest="sub", required=True
        )
        sub.add_parser("ls", parents=[common], help=f"every {noun[:-1]}").add_argument("--limit", type=int)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    key = getattr(args, "key", None) or os.environ.get("SPINDLE_API_KEY")
    if not key:
        root.error("no API key: pass --key or set SPINDLE_API_KEY")
    try:
        with Spindle(key, getattr(args, "url", None)) as spindle:
            _run(args, spindle, Output(getattr(args, "json", False)))
    except SpindleError as exc:
        print(f"spindle: {exc}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

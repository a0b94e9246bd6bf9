"""Log context and formats: a request id that follows a job from its HTTP request into the Celery task, and
`SPINDLE_LOG_FORMAT=json` (one JSON object per line) beside the default plain text.

The context lives in a contextvar: the request-id middleware binds it for each request, the worker for each task
(from the message's headers, config.logging.TASK_HEADER, which the hint carries). `ContextFilter` on the handlers
copies it onto every record, so any logger's lines carry it; a call's own `extra` (job_id on the dead-letter line)
wins over the context.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun
from django.conf import settings

# Context fields a record may carry (from the context or a call's `extra`), in the order the formatters print them.
FIELDS = ("request_id", "task", "job_id", "queue", "queue_id", "workspace_id", "attempts", "error_type")
HEADER = "X-Request-Id"
# The Celery message header that carries the request id: a header, not an argument, so workers of the previous
# release (which ignore unknown headers) and hints without it (older web processes) both keep working.
TASK_HEADER = "spindle_request_id"
# A client's id is kept when it looks like an id (a proxy's or a load balancer's), so their logs join ours;
# anything else (spaces, quotes, control characters, over 128 characters) is replaced by a new one.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")

_context: ContextVar[dict[str, Any] | None] = ContextVar("spindle_log_context", default=None)


def bind(**fields: Any) -> Token:
    """Add fields (None ones left out) to the log context of this thread or task, until `reset(token)`."""
    current = _context.get() or {}
    return _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def reset(token: Token) -> None:
    _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


def request_id() -> str | None:
    """The request id of the request or task running in this context, if any."""
    context = _context.get()
    return context.get("request_id") if context else None


def sane(value: Any) -> str | None:
    return value if isinstance(value, str) and _SANE.fullmatch(value) else None


def new_request_id(given: str | None = None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new random one."""
    return sane(given) or secrets.token_hex(16)


def task_headers() -> dict[str, str]:
    """Headers for a Celery message sent from here: the current request id, if there is one."""
    rid = request_id()
    return {TASK_HEADER: rid} if rid else {}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name in FIELDS if (value := getattr(record, name, None)) is not None}


class ContextFilter(logging.Filter):
    """Copies the log context onto each record (never over an attribute the call set itself), and notes which
    fields came from the context in `record.context_fields`."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        if context and not hasattr(record, "context_fields"):
            added = [name for name in context if not hasattr(record, name)]
            for name in added:
                setattr(record, name, context[name])
            record.context_fields = tuple(added)
        return True


def _suffixed(line: str, record: logging.LogRecord) -> str:
    """`line` with the context fields as ` key=value` at the end of its first line (before a traceback). Fields a
    call passed itself are its message's business: a plain line does not repeat them."""
    names = getattr(record, "context_fields", ())
    if not names:
        return line
    head, newline, rest = line.partition("\n")
    return head + "".join(f" {name}={getattr(record, name)}" for name in names) + newline + rest


class PlainFormatter(logging.Formatter):
    """The default text line, followed by the context fields the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        return _suffixed(super().format(record), record)


class _SuffixedFormatter(logging.Formatter):
    """Celery's own formatter (colours, task names) kept in plain mode, with the context fields appended."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return _suffixed(self.inner.format(record), record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields present, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # ASCII escapes: a lone surrogate in a message can never make the stream's write fail.
        return json.dumps(entry, default=str)


def json_format() -> bool:
    return getattr(settings, "SPINDLE_LOG_FORMAT", "plain") == "json"


_FILTER = ContextFilter()


@after_setup_logger.connect(weak=False)
@after_setup_task_logger.connect(weak=False)
def _adopt_celery_handlers(logger: logging.Logger | None = None, **kwargs: Any) -> None:
    """A worker replaces the root handlers Django's LOGGING set (worker_hijack_root_logger): give its handlers
    the context and the configured format, so a worker's lines look like the web's."""
    for handler in getattr(logger, "handlers", []):
        handler.addFilter(_FILTER)
        current_formatter = handler.formatter or logging.Formatter()
        if json_format():
            handler.setFormatter(JsonFormatter())
        elif not isinstance(current_formatter, _SuffixedFormatter | PlainFormatter):
            handler.setFormatter(_SuffixedFormatter(current_formatter))


# Task id -> the token of its bound context: the thread pool runs tasks of several threads at once.
_task_tokens: dict[str, Token] = {}


@task_prerun.connect(weak=False)
def _bind_task_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """Each task logs under the request id its message carries (from the request that sent the hint)."""
    request = getattr(task, "request", None)
    headers = getattr(request, "headers", None) or {}
    rid = sane(headers.get(TASK_HEADER) or getattr(request, TASK_HEADER, None))
    if task_id is not None:
        _task_tokens[task_id] = bind(request_id=rid, task=getattr(task, "name", None))


@task_postrun.connect(weak=False)
def _unbind_task_context(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            reset(token)
        except ValueError:  # bound in another context (a pool that moved the task): nothing of ours to undo
            pass


def logging_config(log_format: str, *, level: str) -> dict[str, Any]:
    """settings.LOGGING: one console handler in `log_format` (plain or json), every line with its context."""
    if log_format not in ("plain", "json"):
        raise RuntimeError("SPINDLE_LOG_FORMAT must be plain or json")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "config.logging.ContextFilter"}},
        "formatters": {
            "plain": {
                "()": "config.logging.PlainFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            },
            "json": {"()": "config.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.request": {"level": "ERROR"}},
    }

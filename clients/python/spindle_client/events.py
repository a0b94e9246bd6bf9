"""Reading the API's Server-Sent Events stream (`/v1/events`, `/v1/queues/{name}/events`), resuming after a drop.

The server sends `event: connected` first, then each event as `id: evt_…`, `event: <type>`, `data: <JSON>`, and a
`: heartbeat` comment when idle. A stream can end: a WSGI server reached directly ends each one after a while,
a proxy may cut it, the network may drop. Like EventSource, the reader then reconnects after the `retry:` delay
with `Last-Event-ID`, so no event is lost or repeated. Only protocol-level refusals (401, 404, 429 too many
streams…) end the iteration, as the typed error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx

from spindle_client import errors
from spindle_client.models import Event

# Control events of the protocol, not workspace events.
CONTROL = frozenset({"connected", "closed"})
DEFAULT_RETRY_S = 2.0


@dataclass
class Message:
    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None


@dataclass
class Parser:
    """The WHATWG event-stream rules, line by line; `retry_s` and `last_id` persist across messages."""

    retry_s: float = DEFAULT_RETRY_S
    last_id: str | None = None
    pending: Message = field(default_factory=Message)

    def line(self, line: str) -> Message | None:
        """The message a blank line completes, if any."""
        if not line:
            message, self.pending = self.pending, Message()
            return message if message.data else None
        if line.startswith(":"):
            return None  # a comment: the heartbeat
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.pending.event = value
        elif name == "data":
            self.pending.data.append(value)
        elif name == "id" and "\0" not in value:
            self.pending.id = self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_s = int(value) / 1000
        return None


class EventStream:
    """An iterator of the workspace's events, reconnecting with Last-Event-ID, until `timeout_s` (if given) passes.

    `connections` counts the connections made so far, `last_event_id` is where a new stream would resume.
    """

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        headers: dict[str, str],
        *,
        last_event_id: str | None = None,
        timeout_s: float | None = None,
        read_timeout_s: float = 45.0,
    ) -> None:
        self.http = http
        self.url = url
        self.headers = headers
        self.parser = Parser(last_id=last_event_id)
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        # Three heartbeats (15 s apart) missing means the connection is dead even if no error says so.
        self.read_timeout_s = read_timeout_s
        self.connections = 0
        self._events_left = self._run()

    @property
    def last_event_id(self) -> str | None:
        return self.parser.last_id

    def _remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        return next(self._events_left)

    def close(self) -> None:
        """Drop the connection now (also done when the stream is garbage-collected)."""
        self._events_left.close()

    def _run(self) -> Iterator[Event]:
        while self._remaining() > 0:
            try:
                yield from self._connection()
            except httpx.TransportError as exc:  # a timeout or a drop: reconnect, unless it never connected
                if self.connections == 0 and self._remaining() > 0:
                    raise errors.ConnectionFailed.from_transport(exc) from exc
            except errors.ServiceUnavailableError as exc:  # no stream slot on this process right now
                time.sleep(min(max(0.0, self._remaining()), exc.retry_after or self.parser.retry_s))
                continue
            time.sleep(min(max(0.0, self._remaining()), self.parser.retry_s))

    def _connection(self) -> Iterator[Event]:
        headers = {**self.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.parser.last_id:
            headers["Last-Event-ID"] = self.parser.last_id
        read = min(self.read_timeout_s, max(0.01, self._remaining()))
        timeout = httpx.Timeout(10.0, read=read)
        with self.http.stream("GET", self.url, headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                raise errors.from_response(response.status_code, response.headers, response.content)
            self.connections += 1
            yield from self._events(response.iter_lines())

    def _events(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            message = self.parser.line(line)
            if message is not None and message.event not in CONTROL and message.id:
                yield Event.from_dict(json.loads("\n".join(message.data)))
            if self._remaining() <= 0:
                return

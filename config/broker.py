"""The embedded broker: kombu's filesystem transport with atomic message files.

kombu's filesystem transport creates a file and then writes it, while another thread or process may already
read it: a half-written (often empty) message or exchange table then kills the worker with a JSONDecodeError.
Here messages and exchange tables are written under a temporary name and renamed into place (atomic on POSIX);
table updates are serialised by a lock file.
Registered as the `spindlefs://` transport (config/celery.py); the default `CELERY_BROKER_URL` of embedded mode.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.filesystem import LOCK_EX, exchange_queue_t, lock, unlock
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps, loads


def _write_atomically(final: str, data: bytes, folder: str) -> None:
    # No "." before a queue part in the temporary name: consumers match `<stamp>_<uuid>.<queue>.msg` only.
    partial = os.path.join(folder, f"~{uuid.uuid4().hex}")
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, final)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        try:
            _write_atomically(final, str_to_bytes(dumps(payload)), self.data_folder_out)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        entry = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            with open(self.control_folder / f"{exchange}.lock", "wb") as guard:
                lock(guard, LOCK_EX)  # one binder at a time; readers never wait: they see whole files only
                try:
                    queues = [exchange_queue_t(*q) for q in loads(file.read_bytes())] if file.exists() else []
                    if entry not in queues:
                        queues.insert(0, entry)
                        _write_atomically(str(file), str_to_bytes(dumps(queues)), str(self.control_folder))
                finally:
                    unlock(guard)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc


class Transport(filesystem.Transport):
    Channel = Channel

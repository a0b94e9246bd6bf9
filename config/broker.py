"""The embedded broker: kombu's filesystem transport with atomic message files.

kombu's filesystem transport creates a message file and then writes it, while a consumer may already move and
read it: a half-written (often empty) file then kills the worker with a JSONDecodeError. Here each message is
written under a temporary name the consumers ignore and renamed into place, which is atomic on POSIX.
Registered as the `spindlefs://` transport (config/celery.py); the default `CELERY_BROKER_URL` of embedded mode.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No "." before the queue part: consumers match `<stamp>_<uuid>.<queue>.msg` and skip this name.
        partial = os.path.join(self.data_folder_out, f"~{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

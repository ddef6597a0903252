"""kombu's filesystem transport (the embedded broker) with atomic message writes.

kombu's own `_put` creates the message file under its final name and then writes to it, so a
consumer polling the folder (another process, or another thread of the same worker, such as the
recovery scan re-sending a job at startup) can take the file while it is still empty; decoding
it then fails and the worker stops ("Unrecoverable error: JSONDecodeError"). Here a message is
written under a name consumers ignore and renamed into place, which is atomic on one
filesystem. Reading, ordering and the folders are kombu's.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".partial"  # consumers take only names ending in ".<queue>.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put `payload` on `queue`: written whole under a temporary name, then renamed."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            if os.path.exists(partial):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

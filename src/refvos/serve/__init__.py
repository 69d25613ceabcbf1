"""``refvos serve``: a small web page and JSON API to segment what a sentence refers to.

An ASGI application (Starlette, :mod:`.app`) served by uvicorn (:mod:`.server`); uploads are
decoded in :mod:`.decoding`, request bodies parsed in :mod:`.parsing`, the model runs in the
bounded pool of :mod:`.pool` and answers are built by :mod:`.render`.
"""

from .limits import Limits
from .pool import WorkerPool
from .server import RefVOSServer, make_server

__all__ = ["Limits", "RefVOSServer", "WorkerPool", "make_server"]

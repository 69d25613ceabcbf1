"""``refvos serve``: a small web page and JSON API to segment what a sentence refers to.

Built on the standard library's ``ThreadingHTTPServer``; see :mod:`refvos.serve.app`.
"""

from .app import Limits, RefVOSServer, SegmentService, make_server

__all__ = ["Limits", "RefVOSServer", "SegmentService", "make_server"]

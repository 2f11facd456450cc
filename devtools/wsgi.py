"""A WSGI app served on a free loopback port in a thread: what tests and benches talk to over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import make_server


def serve_in_thread(app: Any, name: str = "wsgi-server") -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a daemon thread; returns (base URL, stop)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_port}", stop

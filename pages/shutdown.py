"""The server stops when asked, even with a client that stalls (a helper module, not a page):
installed by `amend app`'s launcher before Streamlit starts, beside pages/hosts.py.

On SIGTERM or Ctrl+C Streamlit asks its web server (uvicorn) to stop, and uvicorn then waits,
with no limit, for every open response to finish. A browser tab that stopped reading halfway
through a large file keeps that response open for ever, and `amend app` with it: a service
manager's stop, or a test's, hangs. Nothing is lost by ending the process then: every decision
is committed to the project's SQLite log when it is made (the trail survives kill -9)."""

from __future__ import annotations

import faulthandler
import sys

#: Seconds a stop request waits for open responses before the process ends anyway.
STOP_GRACE_SECONDS = 10.0


def stop_within_grace(grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """In the server process: the first stop request also arms a watchdog that ends the process
    ``grace_seconds`` later, writing every thread's stack to stderr first (what the server was
    waiting on) and exiting with status 1. A clean stop inside the grace period exits as before."""
    from streamlit.web.server.server import Server

    streamlit_stop = Server.stop
    armed = []

    def stop(self: Server) -> None:
        if not armed:
            armed.append(True)
            print(f"  Amend: the server ends within {grace_seconds:g} s, open connections or not.",
                  file=sys.stderr, flush=True)
            # faulthandler's watchdog is a C thread: it fires even if Python code never yields again.
            faulthandler.dump_traceback_later(grace_seconds, exit=True)
        streamlit_stop(self)

    Server.stop = stop

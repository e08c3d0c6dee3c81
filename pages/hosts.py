"""The server's Host check (a helper module, not a page): installed by `amend app`'s launcher
before Streamlit starts, so it lives beside the app and not in core/ (core never imports
streamlit). The names come from core.cli.launch.trusted_hosts through AMEND_TRUSTED_HOSTS."""

from __future__ import annotations

import os


def guard_hosts() -> None:
    """In the server process: put Starlette's TrustedHostMiddleware first in Streamlit's middleware
    stack, with the names in AMEND_TRUSTED_HOSTS; HTTP requests and websockets with another Host
    get 400 and never reach a session. Does nothing without the variable (a plain `streamlit run`)."""
    names = [n for n in os.environ.get("AMEND_TRUSTED_HOSTS", "").split(",") if n]
    if not names or names == ["*"]:
        return
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from streamlit.web.server.starlette import starlette_app

    streamlit_middleware = starlette_app.create_streamlit_middleware

    def with_host_check() -> list:
        return [Middleware(TrustedHostMiddleware, allowed_hosts=names, www_redirect=False),
                *streamlit_middleware()]

    starlette_app.create_streamlit_middleware = with_host_check

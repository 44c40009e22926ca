"""Run the app with uvicorn, optionally behind a temporary gradio.live share link."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("toonforge.server")

TUNNEL_WAIT_S = 60.0


def serve(app: FastAPI, *, host: str, port: int, share_token: str | None = None) -> None:
    """Serve ``app`` until interrupted. ``share_token`` set: also open a gradio.live tunnel."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,  # the app logs one structured line per request itself
            log_config=None,  # keep the process's logging setup
            timeout_graceful_shutdown=10,
        )
    )
    log.info("Toonforge listening on http://%s:%d", _url_host(host), port)
    if share_token:
        threading.Thread(
            target=_open_tunnel, args=(server, host, port, share_token), name="share-tunnel", daemon=True
        ).start()
    server.run()


def _open_tunnel(server: uvicorn.Server, host: str, port: int, share_token: str) -> None:
    from gradio import networking  # only needed for --share

    deadline = time.monotonic() + TUNNEL_WAIT_S
    while not server.started:
        if time.monotonic() > deadline or server.should_exit:
            return
        time.sleep(0.1)
    try:
        url = networking.setup_tunnel(
            local_host=host,
            local_port=port,
            share_token=share_token,
            share_server_address=None,
            share_server_tls_certificate=None,
        )
    except (RuntimeError, OSError) as exc:
        log.error("could not create a share link: %s", exc)
        return
    log.info("public URL: %s", url.replace("http://", "https://", 1))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # IPv6 literals go in brackets

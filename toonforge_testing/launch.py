"""Start ``python app.py`` in a subprocess for tests, benchmarks and tools, and stop it again.

    with launched_app(env=scratch_env(tmp), log_path=tmp / "app.log") as app:
        httpx.get(f"{app.url}/health")

Standard library only, so that scripts can import it before anything heavy.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
POLL_S = 0.25
PROBE_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 30
# Loopback must never go through an http_proxy from the caller's environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class LaunchedApp:
    """A running ``app.py``: base URL (no trailing slash), its pid and Popen, and its log file."""

    url: str
    pid: int
    process: subprocess.Popen
    log_path: Path


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` (default: the loopback) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def app_env(**overrides: str) -> dict[str, str]:
    """``os.environ`` without TOONFORGE_* (the caller's shell settings: backend, height...),
    plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOONFORGE_")}
    env.update(overrides)
    return env


def scratch_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """:func:`app_env` for a throwaway app: its results and Gradio's files under ``workdir``,
    no analytics, headless rendering unless the caller chose otherwise."""
    return app_env(
        TOONFORGE_DATA_DIR=str(workdir / "data"),
        GRADIO_TEMP_DIR=str(workdir / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        PYOPENGL_PLATFORM=os.environ.get("PYOPENGL_PLATFORM", "egl"),
        **overrides,
    )


@contextlib.contextmanager
def launched_app(
    *,
    env: dict[str, str] | None = None,
    log_path: Path,
    timeout_s: float = 120,
    health_path: str = "/health",
    cwd: Path = ROOT,
    port: int | None = None,
    args: list[str] | None = None,
) -> Iterator[LaunchedApp]:
    """``python app.py`` in ``cwd`` on ``port`` (default: a free one), with ``env`` as its whole
    environment (default: ours) and stdout/stderr in ``log_path``; yields once
    ``GET http://127.0.0.1:<port><health_path>`` answers 200. ``args`` default to
    ``--host 127.0.0.1 --port <port>``; ``[]`` leaves the address to the environment.

    Raises RuntimeError, with the end of the log, if the app exits first or ``timeout_s`` passes.
    """
    port = port or free_port()
    args = ["--host", HOST, "--port", str(port)] if args is None else args
    # Unbuffered, so that the log tail in an error shows the app's last words.
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        # Its own session, so that stopping it also stops whatever it started, and nothing else.
        proc = subprocess.Popen(
            [sys.executable, "app.py", *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    app = LaunchedApp(f"http://{HOST}:{port}", proc.pid, proc, log_path)
    try:
        _wait_until_ready(app, health_path, timeout_s)
        yield app
    finally:
        _stop(proc)


def _die_with_parent() -> Callable[[], None] | None:
    """For the child: SIGTERM when its parent dies (even by SIGKILL), so no server is left behind."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    # Loaded here, before the fork: only the call itself runs in the child.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return child


def _wait_until_ready(app: LaunchedApp, health_path: str, timeout_s: float) -> None:
    url = app.url + health_path
    deadline = time.monotonic() + timeout_s
    while True:
        if app.process.poll() is not None:
            raise RuntimeError(
                f"app.py exited with {app.process.returncode} before serving:\n{log_tail(app.log_path)}"
            )
        try:
            with _OPENER.open(url, timeout=PROBE_TIMEOUT_S) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not listening yet, or still starting up
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"app.py did not answer {url} with 200 within {timeout_s:g} s:\n{log_tail(app.log_path)}"
            )
        time.sleep(POLL_S)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the app's process group, SIGKILL if it is not gone after STOP_TIMEOUT_S."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

"""Pipeline worker processes: one per job-pool thread, so that CPU work runs truly in parallel.

The pipeline is pure Python in places (mesh building, JPEG and PNG encoding glue, MediaPipe's
graph calls), so threads in one process queue behind the GIL: measured here, 10 clients got
1.39x the throughput of one. A child process per worker removes that ceiling.

Children are plain ``python -m service.worker <fd>`` processes talking over a socket pair with
:mod:`multiprocessing.connection` framing. ``multiprocessing``'s spawn start method is not used
because it re-imports the parent's ``__main__`` (``app.py``, the whole UI) in every child.

Protocol, one job at a time per child::

    parent -> child   ("warm", config)            once, at start
    child  -> parent  ("warm",)                   once warmed up (read by a watcher thread)
    parent -> child   ("run", image, options, out_dir, config, wants_progress, cpu_threads)
    child  -> parent  ("progress", fraction, stage)*  then one of
                      ("done", FigurineResult) | ("error", ToonforgeError) | ("failed", text)
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import contextlib
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterator

import cv2

from pipeline.config import Config
from pipeline.errors import ToonforgeError
from pipeline.runner import FigurineResult, Options, run
from pipeline.stylize import ProgressFn
from pipeline.validate import ImageInput
from service.jobs import WORKER_NICE

log = logging.getLogger("toonforge.worker")

ROOT = Path(__file__).resolve().parent.parent
# A child runs the whole pipeline on this photo once at start, so that no user pays for
# loading MediaPipe's graphs, the EGL context and the body meshes.
WARM_UP_PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
STOP_TIMEOUT_S = 5.0


class WorkerCrashedError(RuntimeError):
    """The child died or broke the protocol: a server fault, never the user's."""


class WorkerProcess:
    """One child process; :meth:`run` sends it a job and waits for the answer."""

    def __init__(self, config: Config) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "service.worker", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_sock.close()  # the child holds its own copy; ours would keep EOF from arriving
        self._conn = Connection(parent_sock.detach())
        self._warm = threading.Event()
        self._conn.send(("warm", config))
        # The only reader until warm: run() waits for it, so two threads never read at once.
        threading.Thread(target=self._await_warm, name=f"warm-{self.pid}", daemon=True).start()

    def _await_warm(self) -> None:
        try:
            self._conn.recv()
        except (EOFError, OSError):
            pass  # died while warming: run() will find it dead and the pool replaces it
        finally:
            self._warm.set()

    @property
    def warm(self) -> bool:
        """The child has run its warm-up photo (or died trying)."""
        return self._warm.is_set()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None and not self._conn.closed

    def run(
        self,
        image: ImageInput,
        options: Options,
        out_dir: Path,
        config: Config,
        progress: ProgressFn | None,
        cpu_threads: int = 1,
    ) -> FigurineResult:
        self._warm.wait()
        try:
            self._conn.send(("run", image, options, out_dir, config, progress is not None, cpu_threads))
            while True:
                message = self._conn.recv()
                if message[0] != "progress":
                    break
                if progress is not None:
                    progress(message[1], message[2])
        except (EOFError, OSError) as exc:
            code = self.stop()
            raise WorkerCrashedError(f"worker process {self.pid} exited (status {code})") from exc
        except BaseException:
            # e.g. the progress callback raised: the child is still mid-job and its later
            # messages would be read as the next job's answer, so this child is done for.
            self._proc.kill()
            self.stop()
            raise
        kind, payload = message
        if kind == "done":
            return payload
        if kind == "error":
            raise payload
        raise WorkerCrashedError(payload if kind == "failed" else f"unexpected message {kind!r}")

    def stop(self) -> int | None:
        """Close the pipe (the child exits at EOF); kill it if it does not."""
        if not self._warm.is_set():
            # A warming child reads no EOF until it is warm, and closing the pipe under the
            # thread that awaits it breaks that thread's read: end the child, let it see EOF.
            self._proc.kill()
            self._warm.wait(STOP_TIMEOUT_S)
        self._conn.close()
        try:
            return self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()


class WorkerProcesses:
    """``size`` children, started on first use (or by :meth:`start`), one lent per job.

    The job pool has exactly ``size`` threads, so a free child is always there for a job; a
    child that died is replaced on the next loan.
    """

    def __init__(self, size: int, config: Config) -> None:
        self.size = size
        self.config = config
        self._free: "queue.SimpleQueue[WorkerProcess]" = queue.SimpleQueue()
        self._all: list[WorkerProcess] = []
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self.restarts = 0  # children replaced after dying, for /metrics

    def start(self) -> None:
        """Start every child now, so that they import the pipeline while the server starts."""
        with self._lock:
            if self._closed or self._started:
                return
            self._started = True
            for _ in range(self.size):
                self._free.put(self._spawn_locked())

    @contextlib.contextmanager
    def lend(self) -> Iterator[WorkerProcess]:
        if self._closed:
            raise WorkerCrashedError("the worker processes are shut down")
        self.start()
        worker = self._free.get()
        try:
            worker = self._alive_or_replaced(worker)
            yield worker
        finally:
            # A child that died on this job is replaced now, so that it warms up while idle
            # rather than in front of the next request.
            with contextlib.suppress(WorkerCrashedError):
                worker = self._alive_or_replaced(worker)
            self._free.put(worker)

    def _alive_or_replaced(self, worker: WorkerProcess) -> WorkerProcess:
        if worker.alive:
            return worker
        with self._lock:
            if self._closed:
                raise WorkerCrashedError("the worker processes are shut down")
            return self._replace_locked(worker)

    def run(
        self,
        image: ImageInput,
        options: Options,
        out_dir: Path,
        progress: ProgressFn | None = None,
        cpu_threads: int = 1,
    ) -> FigurineResult:
        """Run one job on a free child; ``cpu_threads`` is how many cores it may use (OpenCV)."""
        with self.lend() as worker:
            return worker.run(image, options, out_dir, self.config, progress, cpu_threads)

    @property
    def warm(self) -> bool:
        """Started, and every child has warmed up: a job now runs at full speed."""
        with self._lock:
            return self._started and all(w.warm for w in self._all)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all if w.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()

    def _spawn_locked(self) -> WorkerProcess:
        worker = WorkerProcess(self.config)
        self._all.append(worker)
        return worker

    def _replace_locked(self, dead: WorkerProcess) -> WorkerProcess:
        dead.stop()
        if dead in self._all:
            self._all.remove(dead)
        log.warning("replacing worker process %d", dead.pid)
        self.restarts += 1
        return self._spawn_locked()


# -- the child ------------------------------------------------------------------------------
def serve(conn: Connection) -> None:
    """Answer jobs until the parent closes the pipe."""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "warm":
            warm_up(message[1])
            conn.send(("warm",))
            # Models, graphs and caches live as long as the process: the collector need never
            # look at them again, so each collection below costs 0.5 ms rather than 100.
            gc.collect()
            gc.freeze()
            continue
        _, image, options, out_dir, config, wants_progress, cpu_threads = message
        cv2.setNumThreads(cpu_threads)
        progress = (lambda f, stage: conn.send(("progress", f, stage))) if wants_progress else None
        try:
            result = run(image, options, out_dir=out_dir, config=config, progress=progress)
        except ToonforgeError as exc:
            conn.send(("error", exc))
        except Exception as exc:  # reported to the parent as a server fault, with our traceback
            log.exception("pipeline failed")
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("done", result))
        # Meshes hold reference cycles, and the collector's own schedule (it counts objects,
        # not bytes) let a worker grow by 0.7 MB a photo; collecting after each job, once the
        # answer is sent, keeps it flat (measured: 453 MB after 200 photos).
        gc.collect()


def warm_up(config: Config) -> None:
    """One untimed run on the bundled photo; a failure here is logged and left to the first
    real job to report, with the user's own photo."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warm-up-") as tmp:
        try:
            run(WARM_UP_PHOTO.read_bytes(), Options(), out_dir=Path(tmp), config=config)
        except (ToonforgeError, OSError, RuntimeError) as exc:
            log.warning("warm-up run failed: %s", exc)
            return
    log.info("worker %d warm in %.1f s", os.getpid(), time.perf_counter() - started)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Ctrl+C reaches the whole process group; the server decides when we stop, by closing
    # the pipe, so a worker must not die mid-job (or print a traceback) on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # Absolute, not relative: a child started from a reniced job thread inherits its value.
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(current, WORKER_NICE))
    conn = Connection(int(argv[1]))
    try:
        serve(conn)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent went away mid-job: nobody is left to answer
    finally:
        conn.close()
        logging.shutdown()
    # Skip interpreter teardown: there is nothing left to save, and manifold3d's bindings
    # print a page of "nanobind: leaked ..." warnings during it.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)

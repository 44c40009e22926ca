"""What the HTTP API and the UI share: config, job pool, result store and metrics.

Both interfaces call :meth:`Runtime.generate` (async) or :meth:`Runtime.generate_sync`, so a
photo from either goes through the same limits, queue and storage.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import Config, FigurineResult, Options, ToonforgeError, run
from pipeline.stylize import ProgressFn
from pipeline.validate import ImageInput
from service import __version__
from service.jobs import JobPool
from service.config import ServiceConfig
from service.metrics import Metrics
from service.storage import ResultStore
from service.worker import WorkerProcesses

if TYPE_CHECKING:
    from service.ray_backend import RayBackend

# Diffusion stays in the server process: one copy of the weights on the GPU, and ZeroGPU
# only grants GPUs to the process that runs the Gradio app.
IN_PROCESS_BACKENDS = frozenset({"diffusion"})


@dataclass(frozen=True)
class Generated:
    id: str
    result: FigurineResult


class Runtime:
    """One per process: the pool, store and metrics every interface uses.

    ``service`` says where jobs run: local worker processes or threads (the default), or the
    Ray cluster it names (see service/config.py); Ray is imported only in that case.
    """

    def __init__(
        self, config: Config, *, service: ServiceConfig | None = None, version: str = __version__
    ) -> None:
        self.config = config
        self.service = service or ServiceConfig()
        self.version = version
        self.started = time.monotonic()
        self.store = ResultStore(config.data_dir / "results", config.result_ttl_s, config.max_disk_bytes)
        self.metrics = Metrics(version)
        self.processes: WorkerProcesses | None = None
        self.cluster: "RayBackend | None" = None
        self._warm = threading.Event()  # thread mode: set once the warm-up photo has run
        self._warming = False
        if self.service.ray is not None:
            from service.ray_backend import RayBackend

            # One job thread per job the cluster can run at once when scaled out.
            self.jobs = JobPool(self.service.ray.max_in_flight, config.queue_size)
            self.cluster = RayBackend(config, self.service.ray, self.metrics)
        else:
            self.jobs = JobPool(config.workers, config.queue_size)
            if config.worker_processes:
                self.processes = WorkerProcesses(config.workers, config)
        self.metrics.bind(self.jobs, self.store, self.processes)

    @property
    def mode(self) -> str:
        """Where jobs run: ``process`` (local workers), ``thread`` (this process) or ``ray``."""
        if self.cluster is not None:
            return "ray"
        return "process" if self.processes is not None else "thread"

    @property
    def ready(self) -> bool:
        """True once a job would run at full speed: workers warm, or Ray replicas up."""
        if self.cluster is not None:
            return self.cluster.ready
        if self.processes is not None:
            return self.processes.warm
        return self._warm.is_set()

    # -- jobs ---------------------------------------------------------------------------------
    async def generate(self, image: ImageInput, options: Options, *, interface: str) -> Generated:
        """Run the pipeline on the pool; raises ToonforgeError (QueueFullError when full)."""
        result_id, future = self._submit(image, options, None, None, interface)
        # Cancelling this await (server shutdown) cancels the job too if it has not started.
        return Generated(result_id, await asyncio.wrap_future(future))

    def generate_sync(
        self,
        image: ImageInput,
        options: Options,
        *,
        interface: str,
        owner: str | None = None,
        progress: ProgressFn | None = None,
    ) -> Generated:
        """Blocking variant for synchronous callers (the Gradio handler)."""
        result_id, future = self._submit(image, options, owner, progress, interface)
        return Generated(result_id, future.result())

    def _submit(
        self,
        image: ImageInput,
        options: Options,
        owner: str | None,
        progress: ProgressFn | None,
        interface: str,
    ) -> tuple[str, "Future[FigurineResult]"]:
        result_id = self.store.reserve(owner)
        try:
            if self.cluster is not None:
                self.cluster.check_available()  # 503 backend_unavailable while the cluster is gone
            future = self.jobs.submit(self._job, result_id, image, options, progress, interface)
        except ToonforgeError as exc:
            self.store.discard(result_id)
            self.metrics.jobs.labels(interface, exc.code).inc()
            raise

        def _cancelled(fut: Future) -> None:
            # Cancelled before it started (client gone): free the reserved id.
            if fut.cancelled():
                self.store.discard(result_id)
                self.metrics.jobs.labels(interface, "cancelled").inc()

        future.add_done_callback(_cancelled)
        return result_id, future

    def _job(
        self,
        result_id: str,
        image: ImageInput,
        options: Options,
        progress: ProgressFn | None,
        interface: str,
    ) -> FigurineResult:
        """Runs on a worker thread; the pipeline itself runs in a worker process when enabled."""
        out_dir = self.store.path(result_id)
        backend = options.backend or self.config.default_backend
        try:
            if self.cluster is not None:
                result = self.cluster.run(image, options, out_dir, progress)
            elif self.processes is not None and backend not in IN_PROCESS_BACKENDS:
                # A lone job may use every core; with company, one each beats sharing.
                alone = self.jobs.running <= 1
                threads = (os.cpu_count() or 1) if alone else 1
                result = self.processes.run(image, options, out_dir, progress, threads)
            else:
                result = run(image, options, out_dir=out_dir, config=self.config, progress=progress)
        except ToonforgeError as exc:
            self.store.discard(result_id)
            self.metrics.jobs.labels(interface, exc.code).inc()
            raise
        except BaseException:
            self.store.discard(result_id)
            self.metrics.jobs.labels(interface, "internal_error").inc()
            raise
        self.metrics.observe_stages(result.timings_ms)
        self.metrics.jobs.labels(interface, "ok").inc()
        # Purging here keeps the disk cap after every job, off the event loop.
        self.store.commit(result_id)
        return result

    def purge(self) -> int:
        return self.store.purge()

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def connect(self) -> None:
        """Ray mode: join the cluster now (raises RayUnavailableError, one line, if it cannot)."""
        if self.cluster is not None:
            self.cluster.connect()

    def start(self) -> None:
        """Warm the pipeline now rather than on the first job (server startup): start the worker
        processes, deploy to the cluster, or (thread mode) run the warm-up photo once."""
        if self.cluster is not None:
            self.cluster.start()
        elif self.processes is not None:
            self.processes.start()
        elif not self._warming:
            from service.worker import warm_up

            self._warming = True
            # On a pool thread, like the jobs it warms up for (one EGL context per job thread).
            self.jobs.submit(warm_up, self.config).add_done_callback(lambda _f: self._warm.set())

    def close(self) -> None:
        self.jobs.shutdown(wait=False)
        if self.processes is not None:
            self.processes.close()
        if self.cluster is not None:
            self.cluster.close()

"""The front end's side of Ray mode: connect, deploy, send jobs to Serve, watch the cluster.

The front end (FastAPI + Gradio) stays an ordinary process and a Ray driver; Gradio cannot run
as several Serve replicas. It keeps its own job pool (the same limits, queue and 503 ``busy``
as local mode); each job thread calls the ``pipeline`` deployment's handle and waits.

Faults:
- a replica that dies mid-job (the actor is gone) fails that call; it is sent once more, and
  Serve routes it to a live replica while it replaces the dead one. A second death, an
  exception that is not a ToonforgeError, or no answer within ``job_timeout_s`` (not retried:
  the job may still be running) is a server fault, 500 ``internal_error``. Nothing hangs.
- the cluster unreachable (its GCS port stops answering): ``/ready`` says 503 and new and
  waiting jobs get 503 ``backend_unavailable``; once it answers again the front end connects
  and deploys anew.

Ray itself is imported only here and in :mod:`service.ray_deployments`, and only in Ray mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import ipaddress
import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from pipeline.config import Config
from pipeline.errors import BackendUnavailableError
from pipeline.runner import FigurineResult, Options
from pipeline.stylize import ProgressFn, backend_availability
from pipeline.validate import ImageInput
from service.config import RAY_ADDRESS_AUTO, RayConfig
from service.errors import RayUnavailableError
from service.metrics import Metrics

log = logging.getLogger("toonforge.ray")

RAY_PACKAGE_HINT = 'Ray mode needs Ray Serve: pip install -r requirements-ray.txt (ray[serve]).'
CONNECT_PROBE_TIMEOUT_S = 3.0
RESULT_POLL_S = 0.5  # how often a waiting job looks whether the cluster is still there
CLUSTER_RETRY_AFTER_S = 10


class ClusterUnavailableError(BackendUnavailableError):
    """The Ray cluster cannot be reached right now (503 backend_unavailable)."""

    retry_after_s = CLUSTER_RETRY_AFTER_S


class ReplicaFailedError(RuntimeError):
    """A job failed on the cluster (a bug, the deadline, or two replica deaths): 500."""


class ReplicaDiedError(ReplicaFailedError):
    """The replica running the job died mid-job: worth one more try on another replica."""


def import_ray() -> tuple[ModuleType, ModuleType]:
    """``ray`` and ``ray.serve``, or an error that names the package to install."""
    # Without this, any Ray call made after a lost cluster's ray.shutdown() (Serve's router
    # pushes metrics from its own thread) quietly runs ray.init() itself, and our reconnect
    # then fails with "ray.init called twice": the front end never rejoined (seen in CI).
    # Read when ray is imported, so set before.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise RayUnavailableError(f"{RAY_PACKAGE_HINT} ({exc})") from None
    return ray, serve


class RayBackend:
    """Runs jobs on the cluster's Serve deployments; :attr:`ready` says whether it can now."""

    def __init__(self, config: Config, ray_config: RayConfig, metrics: Metrics) -> None:
        self.config = config
        self.ray_config = ray_config
        self.metrics = metrics
        self._ray: ModuleType | None = None
        self._serve: ModuleType | None = None
        self._gcs: tuple[str, int] | None = None
        self._handle: Any = None
        self._reachable = False
        self._deploying = False
        self._generation = 0  # one per connection; a deploy from an older one is ignored
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster as a driver; raises :class:`RayUnavailableError` with one clear line."""
        ray, serve = import_ray()
        address = self.ray_config.address
        if address != RAY_ADDRESS_AUTO:
            # ray.init would retry an unreachable address for a minute; a plain TCP probe
            # answers at once.
            host, port = _split(address)
            if not _answers(host, port, CONNECT_PROBE_TIMEOUT_S):
                raise RayUnavailableError(f"cannot reach the Ray cluster at {address} (TOONFORGE_RAY_ADDRESS)")
        try:
            ray.init(
                address=address,
                **_loopback_node_ip(address),
                namespace=self.ray_config.namespace,
                log_to_driver=False,  # replicas' logs stay in each node's own log folder
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayUnavailableError(f"cannot join the Ray cluster at {address}: {first_line}") from None
        self._ray, self._serve = ray, serve
        # The address we were given, when we were given one: the GCS may report another
        # interface of the same machine.
        self._gcs = _split(address if address != RAY_ADDRESS_AUTO else ray.get_runtime_context().gcs_address)
        self._reachable = True
        log.info("joined the Ray cluster at %s:%d", *self._gcs)

    def start(self) -> None:
        """Deploy (in the background, so the server answers /health meanwhile) and watch."""
        if self._watcher is not None:
            return
        if self._ray is None:
            self.connect()
        self._watcher = threading.Thread(target=self._watch, name="ray-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    @property
    def ready(self) -> bool:
        """Replicas deployed, warm and the cluster reachable: jobs run at full speed."""
        return self._handle is not None and self._reachable

    def check_available(self) -> None:
        if not self._reachable:
            raise ClusterUnavailableError(
                "The processing cluster cannot be reached right now. Try again in a few seconds."
            )
        if self._handle is None:
            raise ClusterUnavailableError("The processing cluster is starting up. Try again in a few seconds.")

    # -- jobs -----------------------------------------------------------------------------------
    def run(
        self, image: ImageInput, options: Options, out_dir: Path, progress: ProgressFn | None = None
    ) -> FigurineResult:
        """One photo on a pipeline replica; its files land in ``out_dir`` (our result store)."""
        self.check_available()
        payload = image_bytes(image)
        outcome = None
        for attempt in (1, 2):
            try:
                outcome = self._call(payload, options, progress)
                break
            except ReplicaDiedError:
                if attempt == 2:
                    raise
                self.metrics.cluster_retries.inc()
                log.warning("a replica failed mid-job; sending the job once more")
        assert outcome is not None
        self.metrics.cluster_jobs.labels(outcome.node_id).inc()
        log.info("job ran on node %s replica %s pid %d", outcome.node_id, outcome.replica, outcome.pid)
        if outcome.error is not None:
            raise outcome.error
        return _store(outcome, out_dir)

    def _call(self, payload: bytes, options: Options, progress: ProgressFn | None) -> Any:
        """One call, its answer streamed (progress, then the outcome) and polled, so that a lost
        cluster or the deadline ends the wait."""
        ray = self._ray
        assert ray is not None and self._handle is not None
        stream = self._handle.options(stream=True).run.remote(payload, options)
        events: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        # The stream has no timeout of its own: a reader thread hands its items over.
        threading.Thread(target=_read_stream, args=(stream, events), name="ray-stream", daemon=True).start()
        deadline = time.monotonic() + self.ray_config.job_timeout_s
        answered = False
        try:
            while True:
                try:
                    kind, *rest = events.get(timeout=RESULT_POLL_S)
                except queue.Empty:
                    kind = None
                if kind == "done":
                    answered = True
                    return rest[0]
                if kind == "raised":
                    raise rest[0]
                if kind == "progress" and progress is not None:
                    progress(*rest)
                if kind == "ended":
                    raise ReplicaFailedError("the replica's answer ended without a result")
                if not self._reachable:
                    raise ClusterUnavailableError(
                        "The processing cluster was lost during your job. Try again in a few seconds."
                    )
                if time.monotonic() > deadline:
                    raise ReplicaFailedError(f"no answer within {self.ray_config.job_timeout_s:g} s")
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise ReplicaDiedError(f"replica died: {type(exc).__name__}") from exc
        except ray.exceptions.RayTaskError as exc:  # a bug would fail again: no retry
            raise ReplicaFailedError(f"replica raised {exc}") from exc
        finally:
            if not answered:  # stop work nobody waits for any more
                stream.cancel()

    # -- the cluster ------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Probe the GCS port; deploy when reachable, and connect anew after a loss.

        Deploying waits until every replica is up and warm, which may be never on a cluster
        short of CPUs; it runs on its own thread, so that probing goes on meanwhile.
        """
        while not self._stop.is_set():
            assert self._gcs is not None
            reachable = _answers(*self._gcs, timeout_s=1.0)
            if reachable and not self._reachable:
                log.warning("the Ray cluster answers again; reconnecting")
                self._reconnect()
            elif not reachable and self._reachable:
                log.error("lost the Ray cluster at %s:%d", *self._gcs)
                self._reachable = False
            if self._reachable and self._handle is None and not self._deploying:
                self._deploying = True
                threading.Thread(
                    target=self._deploy, args=(self._generation,), name="ray-deploy", daemon=True
                ).start()
            self.metrics.cluster_ready.set(1 if self.ready else 0)
            self._stop.wait(self.ray_config.probe_interval_s)

    def _deploy(self, generation: int) -> None:
        """Deploy the Serve application, or take the one already running on the cluster."""
        from service.ray_deployments import build_application

        serve = self._serve
        assert serve is not None
        with_diffusion = backend_availability(self.config)["diffusion"].available
        started = time.perf_counter()
        name = self.ray_config.app_name
        try:
            serve.start(http_options={"location": "NoServer"})  # the front end is our HTTP server
            if name in serve.status().applications:
                # Another front end (or our previous run) deployed it: use it as it is rather
                # than redeploying, which would restart every replica.
                log.info("using the running Serve application %r", name)
                handle = self._running_app(generation)
                deployed = False
            else:
                app = build_application(self.config, self.ray_config, with_diffusion=with_diffusion)
                handle = serve.run(app, name=name, route_prefix=None)
                deployed = True
        except (RuntimeError, ConnectionError) as exc:
            log.error("deploying to the Ray cluster failed, will retry: %s", exc)
            return
        finally:
            self._deploying = False
        if handle is None or generation != self._generation:  # lost meanwhile: a stale handle
            return
        self._handle = handle
        if deployed:
            log.info("deployed Serve application %r in %.1f s", name, time.perf_counter() - started)

    def _running_app(self, generation: int) -> Any:
        """The handle of the deployed application once it runs (its replicas warm)."""
        serve = self._serve
        assert serve is not None
        name = self.ray_config.app_name
        while generation == self._generation and not self._stop.is_set():
            status = serve.status().applications.get(name)
            if status is None:
                raise RuntimeError(f"the Serve application {name!r} was deleted while starting")
            if status.status == "RUNNING":
                return serve.get_app_handle(name)
            if status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise RuntimeError(f"the Serve application {name!r} is {status.status}: {status.message}")
            self._stop.wait(self.ray_config.probe_interval_s)
        return None

    def _reconnect(self) -> None:
        ray = self._ray
        assert ray is not None
        self._handle = None
        self._generation += 1
        self._deploying = False  # a deploy stuck on the old connection will never finish
        ray.shutdown()
        try:
            self.connect()
        except RayUnavailableError as exc:
            log.error("%s", exc)


def _read_stream(stream: Any, events: "queue.SimpleQueue[tuple]") -> None:
    """Hand a replica's streamed items to the waiting job, then how the stream ended."""
    try:
        for item in stream:
            events.put(item)
    except Exception as exc:  # handed to the job thread, which raises or retries it
        events.put(("raised", exc))
    else:
        events.put(("ended",))


def _store(outcome: Any, out_dir: Path) -> FigurineResult:
    """Write the replica's files into ``out_dir`` and point the result's paths there."""
    result = outcome.result
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in outcome.files.items():
        if Path(name).name != name or name.startswith("."):  # names come from our code, but check
            raise ReplicaFailedError(f"refusing result file name {name!r}")
        (out_dir / name).write_bytes(data)
    remote_dir = result.out_dir
    moved = {
        f.name: out_dir / getattr(result, f.name).relative_to(remote_dir)
        for f in dataclasses.fields(result)
        if isinstance(getattr(result, f.name), Path)
    }
    return dataclasses.replace(result, **moved)


def image_bytes(image: ImageInput) -> bytes:
    """The photo as bytes for the wire: files are read here, since a path means nothing on
    another node; arrays and PIL images go as lossless PNG."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _loopback_node_ip(address: str) -> dict[str, str]:
    """A head on a loopback address is on this machine: join it on that address too. Left to
    itself, Ray's driver takes the machine's outward interface as its own address."""
    if address == RAY_ADDRESS_AUTO:
        return {}
    host, _ = _split(address)
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return {"_node_ip_address": host}
    return {}


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _answers(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False

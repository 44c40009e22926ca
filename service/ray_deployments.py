"""Ray Serve deployments: the pipeline on CPU replicas, the diffusion stylizer on GPU replicas.

Imported only in Ray mode (by the front end, to deploy) and on the replicas themselves, which
import it by name: every node needs the Toonforge code and packages (one container image).

- ``pipeline``: the whole pipeline for one photo in one warm CPU replica, no extra hops. It
  runs in a scratch folder on its own node and streams its answer: the stages as they go
  (the UI's progress bar), then the files' bytes, never a path: the front end writes them into
  its result store, so no disk is shared.
- ``diffusion``: the SDXL stylizer alone, with a GPU share per replica; the pipeline replicas
  send it the photo and the face analysis and get the cartoon image back.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import ray
from ray import serve

from pipeline.config import Config
from pipeline.errors import ToonforgeError
from pipeline.landmarks import FaceAnalysis
from pipeline.runner import FigurineResult, Options, run
from pipeline.stylize import Availability, ProgressFn, StylizeResult, get_stylizer, use_stylizer
from service.config import RayConfig

# A child of Serve's own logger, so that replicas' lines land in each replica's log file on its
# node (Serve configures only that logger in replicas).
log = logging.getLogger("ray.serve.toonforge")

PIPELINE_DEPLOYMENT = "pipeline"
DIFFUSION_DEPLOYMENT = "diffusion"
# Serve checks each replica this often; a dead replica is noticed and replaced within about it.
HEALTH_CHECK_PERIOD_S = 2.0
JOB_THREADS = 4  # more jobs than this at once in one replica wait their turn
# Replicas render off-screen; the nodes' own environment may not say so.
REPLICA_ENV = {"PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}


@dataclass
class RemoteOutcome:
    """What a pipeline replica answers: the result and its files' bytes, or the user's error.

    ``result``'s paths point into the replica's scratch folder (gone by now); the front end
    re-roots them in its own result store. ``node_id``/``replica`` are for logs and metrics.
    """

    node_id: str
    replica: str
    pid: int
    result: FigurineResult | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    error: ToonforgeError | None = None


class PipelineReplica:
    """One warm copy of the CPU pipeline (MediaPipe graphs, EGL context, body meshes)."""

    def __init__(self, config: Config, diffusion: Any = None) -> None:
        # Late import: service.worker pulls in OpenCV, which only replicas need.
        import cv2

        from service.worker import warm_up

        # OpenCV otherwise starts a thread per core in every replica; on a node full of
        # replicas they spin against each other (local workers run one thread each, too).
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        cv2.setNumThreads(max(1, int(cpus)))
        # The pipeline runs here while run() streams its progress from Serve's own thread;
        # a fixed pool, so that threads (and their allocator arenas) are not made per job.
        self._jobs = ThreadPoolExecutor(max_workers=JOB_THREADS, thread_name_prefix="toonforge-job")
        self.config = config
        if diffusion is not None:
            use_stylizer("diffusion", config, RemoteStylizer(config, diffusion))
        warm_up(config)
        # As in the worker processes: models live as long as the replica, so the collector
        # need not scan them after every job.
        gc.collect()
        gc.freeze()
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.replica = serve.get_replica_context().replica_id.unique_id
        log.info("pipeline replica %s warm on node %s (pid %d)", self.replica, self.node_id, os.getpid())

    def run(self, image: bytes, options: Options) -> Iterator[tuple]:
        """Stream one photo: ``("progress", fraction, stage)`` as the stages go (the UI's
        progress bar, as in local mode), then ``("done", outcome)``. A user's error comes
        back in the outcome; anything else raises."""
        events: "queue.SimpleQueue[tuple | None]" = queue.SimpleQueue()
        job = self._jobs.submit(self._run, image, options, lambda f, stage: events.put(("progress", f, stage)))
        job.add_done_callback(lambda _: events.put(None))
        while (event := events.get()) is not None:
            yield event
        yield ("done", job.result())

    def _run(self, image: bytes, options: Options, progress: ProgressFn) -> RemoteOutcome:
        outcome = RemoteOutcome(self.node_id, self.replica, os.getpid())
        with tempfile.TemporaryDirectory(prefix="toonforge-job-") as scratch:
            out_dir = Path(scratch) / "result"
            try:
                outcome.result = run(image, options, out_dir=out_dir, config=self.config, progress=progress)
            except ToonforgeError as exc:
                outcome.error = exc
            else:
                outcome.files = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()}
        gc.collect()  # meshes hold reference cycles (see service/worker.py)
        return outcome


class DiffusionReplica:
    """The SDXL stylizer, loaded once per replica onto its GPU share."""

    def __init__(self, config: Config) -> None:
        self.stylizer = get_stylizer("diffusion", config)
        log.info("diffusion replica on node %s (pid %d)", ray.get_runtime_context().get_node_id(), os.getpid())

    def stylize(self, image: np.ndarray, face: FaceAnalysis, style: str, seed: int) -> StylizeResult:
        return self.stylizer.stylize(image, face, style, seed, None)


class RemoteStylizer:
    """The diffusion backend as a pipeline replica sees it: a call to the GPU deployment."""

    name = "diffusion"

    def __init__(self, config: Config, handle: Any) -> None:
        # Names and styles only; this never loads the model (no torch needed on CPU nodes).
        from pipeline.stylize.diffusion import DiffusionStylizer

        self.styles = DiffusionStylizer(config).styles
        self._handle = handle

    def availability(self) -> Availability:
        return Availability(True, "on the cluster's GPU deployment")

    def stylize(
        self,
        image: np.ndarray,
        face: FaceAnalysis,
        style: str,
        seed: int,
        progress: ProgressFn | None = None,
    ) -> StylizeResult:
        # No per-step progress across the cluster: the GPU replica answers once, when done.
        return self._handle.stylize.remote(image, face, style, seed).result()


def build_application(config: Config, ray_config: RayConfig, *, with_diffusion: bool) -> Any:
    """The Serve application: the pipeline deployment, bound to the diffusion one if asked."""
    pipeline = serve.deployment(PipelineReplica).options(
        name=PIPELINE_DEPLOYMENT,
        ray_actor_options={"num_cpus": ray_config.replica_cpus, "runtime_env": {"env_vars": REPLICA_ENV}},
        max_ongoing_requests=ray_config.max_ongoing_requests,
        autoscaling_config={
            "min_replicas": ray_config.min_replicas,
            "initial_replicas": max(1, ray_config.min_replicas),
            "max_replicas": ray_config.max_replicas,
            "target_ongoing_requests": ray_config.target_ongoing_requests,
        },
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
    )
    diffusion = None
    if with_diffusion:
        diffusion = serve.deployment(DiffusionReplica).options(
            name=DIFFUSION_DEPLOYMENT,
            ray_actor_options={"num_cpus": 1, "num_gpus": ray_config.diffusion_gpus},
            max_ongoing_requests=1,
            autoscaling_config={
                "min_replicas": ray_config.diffusion_min_replicas,
                "initial_replicas": max(1, ray_config.diffusion_min_replicas),
                "max_replicas": max(1, ray_config.diffusion_max_replicas),
                "target_ongoing_requests": 1,
            },
            health_check_period_s=HEALTH_CHECK_PERIOD_S,
        ).bind(config)
    return pipeline.bind(config, diffusion)


def app_builder(args: dict[str, str]) -> Any:
    """The application for ``serve run`` or a KubeRay ``RayService`` (import path
    ``service.ray_deployments:app_builder``): ``args`` are ``TOONFORGE_*`` settings, taken over
    the environment. A front end pointed at the cluster then uses this running application as
    it is (see service/ray_backend.py) instead of deploying its own."""
    from pipeline.stylize import backend_availability
    from service.config import RAY_ADDRESS_AUTO, ServiceConfig

    env = {**os.environ, **{str(k): str(v) for k, v in args.items()}}
    env.setdefault("TOONFORGE_RAY_ADDRESS", RAY_ADDRESS_AUTO)  # only the deployments' sizes matter here
    config = Config.from_env(env)
    ray_config = ServiceConfig.from_env(env).ray
    assert ray_config is not None  # TOONFORGE_RAY_ADDRESS is set above
    with_diffusion = backend_availability(config)["diffusion"].available
    return build_application(config, ray_config, with_diffusion=with_diffusion)

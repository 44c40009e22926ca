"""The service's own settings (where jobs run), read from the environment in one place.

``pipeline/config.py`` holds what the pipeline needs; this holds what only the service needs to
place jobs: local worker processes (the default) or a Ray cluster (``TOONFORGE_RAY_ADDRESS``).
Nothing here imports Ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from pipeline.config import _float, _int

RAY_ADDRESS_AUTO = "auto"


@dataclass(frozen=True)
class RayConfig:
    """Ray mode: the cluster, the Serve deployments' sizes and the front end's patience."""

    address: str  # "auto" (the cluster Ray finds) or "host:port" of the head node's GCS
    namespace: str = "toonforge"
    app_name: str = "toonforge"
    # The pipeline deployment (CPU backend: the whole pipeline in one replica per job).
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 1.0
    max_ongoing_requests: int = 1  # the pipeline is CPU-bound: one job per replica at a time
    replica_cpus: float = 1.0
    # The diffusion stylizer's own deployment (only deployed when its backend is available).
    diffusion_gpus: float = 1.0  # GPU share per replica, e.g. 0.5 puts two replicas on a GPU
    diffusion_min_replicas: int = 1
    diffusion_max_replicas: int = 1
    # A job that has not answered by then fails (500) rather than hanging the request.
    job_timeout_s: float = 300.0
    # How often the front end checks that the cluster is reachable (for /ready and uploads).
    probe_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("TOONFORGE_RAY_ADDRESS must be 'auto' or host:port")
        if self.address != RAY_ADDRESS_AUTO and not _is_host_port(self.address):
            raise ValueError(
                f"TOONFORGE_RAY_ADDRESS must be 'auto' or host:port, got {self.address!r}"
            )
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                "TOONFORGE_RAY_MIN_REPLICAS and TOONFORGE_RAY_MAX_REPLICAS need "
                f"0 <= min <= max and max >= 1, got {self.min_replicas} and {self.max_replicas}"
            )
        if not 0 <= self.diffusion_min_replicas <= self.diffusion_max_replicas:
            raise ValueError("TOONFORGE_RAY_DIFFUSION_MIN_REPLICAS must be <= ..._MAX_REPLICAS")
        if self.target_ongoing_requests <= 0 or self.max_ongoing_requests < 1:
            raise ValueError("target ongoing requests must be > 0 and max ongoing requests >= 1")
        if self.replica_cpus <= 0 or self.diffusion_gpus < 0:
            raise ValueError("TOONFORGE_RAY_REPLICA_CPUS must be > 0, TOONFORGE_RAY_DIFFUSION_GPUS >= 0")
        if self.job_timeout_s <= 0 or self.probe_interval_s <= 0:
            raise ValueError("TOONFORGE_RAY_JOB_TIMEOUT_S and the probe interval must be > 0")

    @property
    def max_in_flight(self) -> int:
        """Jobs the cluster can run at once when scaled out: the front end's worker count."""
        return self.max_replicas * self.max_ongoing_requests


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service runs its jobs. Build with :meth:`from_env`; never mutate."""

    ray: RayConfig | None = None  # None: local worker processes or threads (the default)

    @property
    def mode(self) -> str:
        return "ray" if self.ray is not None else "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ServiceConfig":
        env = os.environ if env is None else env
        address = env.get("TOONFORGE_RAY_ADDRESS", "").strip()
        if not address:
            return cls()
        d = RayConfig(address=RAY_ADDRESS_AUTO)
        return cls(
            ray=RayConfig(
                address=address,
                namespace=env.get("TOONFORGE_RAY_NAMESPACE") or d.namespace,
                app_name=env.get("TOONFORGE_RAY_APP") or d.app_name,
                min_replicas=_int(env, "TOONFORGE_RAY_MIN_REPLICAS", d.min_replicas),
                max_replicas=_int(env, "TOONFORGE_RAY_MAX_REPLICAS", d.max_replicas),
                target_ongoing_requests=_float(
                    env, "TOONFORGE_RAY_TARGET_ONGOING_REQUESTS", d.target_ongoing_requests
                ),
                max_ongoing_requests=_int(
                    env, "TOONFORGE_RAY_MAX_ONGOING_REQUESTS", d.max_ongoing_requests
                ),
                replica_cpus=_float(env, "TOONFORGE_RAY_REPLICA_CPUS", d.replica_cpus),
                diffusion_gpus=_float(env, "TOONFORGE_RAY_DIFFUSION_GPUS", d.diffusion_gpus),
                diffusion_min_replicas=_int(
                    env, "TOONFORGE_RAY_DIFFUSION_MIN_REPLICAS", d.diffusion_min_replicas
                ),
                diffusion_max_replicas=_int(
                    env, "TOONFORGE_RAY_DIFFUSION_MAX_REPLICAS", d.diffusion_max_replicas
                ),
                job_timeout_s=_float(env, "TOONFORGE_RAY_JOB_TIMEOUT_S", d.job_timeout_s),
            )
        )


def _is_host_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)

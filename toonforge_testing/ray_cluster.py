"""Start a real local Ray cluster (a head and worker nodes, each its own ``ray start``) for tests
and benchmarks, and stop it again, even when the caller fails.

    with local_ray_cluster(tmp, node_cpus=(1, 1)) as cluster:
        env["TOONFORGE_RAY_ADDRESS"] = cluster.address

Every node gets its own temp folder (Ray's session files and ``TMPDIR``, where the replicas'
scratch folders go), binds to the loopback only (a Ray cluster has no authentication of its
own) and runs without dashboard or usage stats.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from toonforge_testing.launch import ROOT, free_port

# A loopback address Ray takes as given: Ray swaps 127.0.0.1 and "localhost" for the machine's
# outward interface, and test traffic must stay on loopback.
LOOPBACK = "127.0.0.2"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 3.0  # grace before SIGKILL; a lost node is a realistic test anyway
# For every Ray process, drivers included: no usage report, no token file (loopback only).
RAY_QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # photos and results are small; Ray's default is 30% of RAM


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen
    temp_dir: Path
    log_path: Path


@dataclass
class LocalRayCluster:
    address: str  # host:port of the head's GCS, for TOONFORGE_RAY_ADDRESS
    nodes: list[RayNode] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every node (each ``ray start --block`` and what it started, by process group)."""
        for node in reversed(self.nodes):
            _stop_group(node.process)


def ray_env(**overrides: str) -> dict[str, str]:
    """The environment of a node: quiet, local, and able to import Toonforge."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOONFORGE_", "RAY_"))}
    env.update(
        RAY_QUIET,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        PYOPENGL_PLATFORM=os.environ.get("PYOPENGL_PLATFORM", "egl"),
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def local_ray_cluster(
    workdir: Path,
    node_cpus: tuple[int, ...] = (1, 1),
    port: int | None = None,
    *,
    metrics_export_port: int | None = None,
) -> Iterator[LocalRayCluster]:
    """A head node with ``node_cpus[0]`` CPUs (its GCS on ``port``, default a free one) plus
    one worker node per further entry.

    ``metrics_export_port``: the head's Prometheus endpoint for Ray's own metrics (Serve's
    replicas among them), on the loopback address. Without it Ray records no metrics at all:
    nothing would read them, and recording costs CPU.
    """
    ray_cli = Path(sys.executable).parent / "ray"
    port = port or free_port()
    cluster = LocalRayCluster(address=f"{LOOPBACK}:{port}")
    # Ray's sockets live in its temp folder and a socket path may not pass 107 bytes, so the
    # nodes' folders are short ones in /tmp (logs stay in ``workdir``).
    temp_root = Path(tempfile.mkdtemp(prefix="tf-ray-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for index, cpus in enumerate(node_cpus):
            name = "head" if index == 0 else f"worker{index}"
            temp_dir = temp_root / name
            scratch = temp_dir / "tmp"
            scratch.mkdir(parents=True, exist_ok=True)
            role = ["--head", f"--port={port}", "--include-dashboard=false"] if index == 0 else [
                f"--address={cluster.address}"
            ]
            metrics = (
                [f"--metrics-export-port={metrics_export_port}"]
                if index == 0 and metrics_export_port
                else []
            )
            log_path = workdir / f"{name}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [
                        str(ray_cli), "start", "--block", *role,
                        f"--num-cpus={cpus}", "--num-gpus=0",
                        f"--node-ip-address={LOOPBACK}",
                        f"--temp-dir={temp_dir}",
                        f"--object-store-memory={OBJECT_STORE_BYTES}",
                        "--disable-usage-stats",
                        *metrics,
                    ],
                    env=ray_env(TMPDIR=str(scratch), **_metrics_env(metrics_export_port)),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopping it stops all it started
                )
            cluster.nodes.append(RayNode(name, process, temp_dir, log_path))
            if index == 0:
                _wait_for_port(LOOPBACK, port, process, log_path)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_root, ignore_errors=True)  # sockets and session files of dead nodes


def _metrics_env(metrics_export_port: int | None) -> dict[str, str]:
    """Ray's metrics recording off unless someone scrapes them."""
    return {} if metrics_export_port else {"RAY_enable_metrics_collection": "0"}


def _wait_for_port(host: str, port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray head did not listen on {port} within {START_TIMEOUT_S:g} s")
        time.sleep(0.25)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the node's process group, SIGKILL whatever is left after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    # Raylet's workers may outlive `ray start` itself; the group still names them.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)

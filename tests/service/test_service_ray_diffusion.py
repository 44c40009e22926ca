"""Ray mode with the diffusion backend: the stylizer as its own Serve deployment (a GPU share
per replica; 0 here, on CPU, with the tiny SDXL built from configs), called by the CPU
pipeline replica that runs landmarks, fusion and export."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
import trimesh

pytest.importorskip("ray", reason="Ray mode needs requirements-ray.txt (in requirements-dev.txt)")

from tests.conftest import ROOT  # noqa: E402
from toonforge_testing.launch import launched_app, log_tail, scratch_env  # noqa: E402
from toonforge_testing.ray_cluster import RAY_QUIET, local_ray_cluster  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
LOG = ROOT / "test-artifacts" / "ray" / "app-diffusion.log"
READY_TIMEOUT_S = 180


def test_diffusion_runs_in_its_own_deployment(tiny_diffusion_env: dict[str, str], tmp_path: Path):
    # One node, two CPUs: one for the pipeline replica, one for the diffusion replica.
    with local_ray_cluster(tmp_path / "cluster", node_cpus=(2,)) as cluster:
        env = scratch_env(
            tmp_path / "front-end",
            **RAY_QUIET,
            **tiny_diffusion_env,
            TOONFORGE_RAY_ADDRESS=cluster.address,
            TOONFORGE_RAY_MAX_REPLICAS="1",
            TOONFORGE_RAY_DIFFUSION_GPUS="0",
        )
        with launched_app(env=env, log_path=LOG, timeout_s=120) as app:
            with httpx.Client(base_url=app.url, trust_env=False, timeout=180) as http:
                deadline = time.monotonic() + READY_TIMEOUT_S
                while http.get("/ready").status_code != 200:
                    assert time.monotonic() < deadline, log_tail(app.log_path)
                    time.sleep(0.5)
                response = http.post(
                    "/api/upload",
                    files={"file": ("me.jpg", PHOTO.read_bytes(), "image/jpeg")},
                    data={"backend": "diffusion", "style": "toon", "seed": "5"},
                )
                assert response.status_code == 200, response.text
                assert response.json()["backend"] == "diffusion"
                stl = http.get(httpx.URL(response.json()["artifacts"]["stl"]).path)
                assert trimesh.load(io.BytesIO(stl.content), file_type="stl").is_watertight
            # The stylizer ran in the diffusion deployment's own replica (its log, on the
            # node), not in the front end.
            replica_logs = list(cluster.nodes[0].temp_dir.rglob("replica_toonforge_diffusion_*.log"))
            assert replica_logs, "no diffusion replica started"
            assert any("diffusion replica on node" in p.read_text(errors="replace") for p in replica_logs)
            assert "diffusion replica on node" not in LOG.read_text(errors="replace")
            assert any(" stylize OK " in p.read_text(errors="replace") for p in replica_logs), [p.read_text(errors="replace")[-1500:] for p in replica_logs]

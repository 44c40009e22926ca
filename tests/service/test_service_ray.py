"""Ray mode for real: a two-node local Ray cluster (two ``ray start`` processes, one CPU each,
each with its own temp folder), ``python app.py`` pointed at it, and real uploads.

The tests run in file order on one cluster and one app (module fixtures); the last one takes
the cluster away. Small on purpose: this machine has 2 shared cores.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

pytest.importorskip("ray", reason="Ray mode needs requirements-ray.txt (in requirements-dev.txt)")

from tests.conftest import ROOT  # noqa: E402
from toonforge_testing.launch import LaunchedApp, free_port, launched_app, log_tail, scratch_env  # noqa: E402
from toonforge_testing.ray_cluster import RAY_QUIET, LocalRayCluster, local_ray_cluster  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
LOG_DIR = ROOT / "test-artifacts" / "ray"
READY_TIMEOUT_S = 150  # two replicas importing and warming the pipeline on 2 busy cores
JOB_LINE = re.compile(r"job ran on node (\w+) replica (\w+) pid (\d+)")


@dataclass
class RayApp:
    cluster: LocalRayCluster
    app: LaunchedApp
    store: Path  # the front end's result store
    ready_before: list[int]  # /ready statuses seen between /health's first 200 and ready


@pytest.fixture(scope="module")
def ray_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayApp]:
    work = tmp_path_factory.mktemp("ray")
    with local_ray_cluster(work / "cluster", node_cpus=(1, 1)) as cluster:
        env = scratch_env(
            work / "front-end",
            **RAY_QUIET,
            TOONFORGE_RAY_ADDRESS=cluster.address,
            TOONFORGE_RAY_MIN_REPLICAS="2",  # one CPU per node, one CPU per replica: one each
            TOONFORGE_RAY_MAX_REPLICAS="2",
            TOONFORGE_RAY_JOB_TIMEOUT_S="60",
        )
        with launched_app(env=env, log_path=LOG_DIR / "app.log", timeout_s=120) as app:
            seen = []
            deadline = time.monotonic() + READY_TIMEOUT_S
            with httpx.Client(base_url=app.url, trust_env=False, timeout=10) as client:
                while (status := client.get("/ready").status_code) != 200:
                    seen.append(status)
                    assert time.monotonic() < deadline, log_tail(app.log_path)
                    time.sleep(0.25)
            yield RayApp(cluster, app, work / "front-end" / "data" / "results", seen)


@pytest.fixture(scope="module")
def http(ray_app: RayApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ray_app.app.url, trust_env=False, timeout=120) as client:
        yield client


def upload(http: httpx.Client, data: bytes, name: str = "photo.jpg", **fields: str) -> httpx.Response:
    return http.post("/api/upload", files={"file": (name, data, "application/octet-stream")}, data=fields)


def job_lines(ray_app: RayApp) -> list[tuple[str, str, int]]:
    text = ray_app.app.log_path.read_text(encoding="utf-8", errors="replace")
    return [(node, replica, int(pid)) for node, replica, pid in JOB_LINE.findall(text)]


def metric_lines(http: httpx.Client, name: str) -> list[str]:
    return [line for line in http.get("/metrics").text.splitlines() if line.startswith(name)]


def test_ready_only_once_replicas_are_up_and_health_says_ray(ray_app: RayApp, http: httpx.Client):
    # Deploying two warm replicas takes seconds; /health answered long before.
    assert ray_app.ready_before and set(ray_app.ready_before) == {503}
    assert http.get("/ready").json() == {"ready": True, "mode": "ray"}
    health = http.get("/health").json()
    assert health["status"] == "ok" and health["queue"]["mode"] == "ray"


def test_uploads_succeed_on_both_nodes_and_results_come_from_our_store(ray_app: RayApp, http: httpx.Client):
    photo = PHOTO.read_bytes()
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: upload(http, photo), range(6)))
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["face"]["count"] == 1 and body["backend"] == "cpu"
        assert "node" not in response.text  # where it ran is for logs and metrics only
    glb = http.get(httpx.URL(responses[0].json()["artifacts"]["glb"]).path)
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    # The front end wrote the replicas' bytes into its own store; the replicas' scratch
    # folders, in each node's own temp folder, are gone.
    for response in responses:
        folder = ray_app.store / response.json()["id"]
        assert {p.name for p in folder.iterdir()} >= {"figurine.glb", "figurine.stl", "report.json"}
    for node in ray_app.cluster.nodes:
        assert not list((node.temp_dir / "tmp").glob("toonforge-job-*")), node.name
    nodes = {node for node, _replica, _pid in job_lines(ray_app)}
    assert len(nodes) == 2, job_lines(ray_app)
    counted = metric_lines(http, "toonforge_cluster_jobs_total{")
    assert len(counted) == 2 and sum(float(line.split()[-1]) for line in counted) >= 6


def test_bad_inputs_still_get_their_4xx(http: httpx.Client):
    photo = PHOTO.read_bytes()
    truncated = upload(http, photo[: len(photo) // 2])
    assert truncated.status_code == 400 and truncated.json()["error"] == "truncated_image"
    svg = upload(http, b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "x.svg")
    assert svg.status_code == 415 and svg.json()["error"] == "unsupported_format"
    template = upload(http, photo, template="nope")
    assert template.status_code == 422 and template.json()["error"] == "unknown_template"


def test_a_replica_killed_mid_load_loses_no_request(ray_app: RayApp, http: httpx.Client):
    photo = PHOTO.read_bytes()
    pids = {pid for _node, _replica, pid in job_lines(ray_app)}
    victim = max(pids)
    retries_before = _total(metric_lines(http, "toonforge_cluster_retries_total"))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(upload, http, photo) for _ in range(6)]
        time.sleep(1.0)  # both replicas are busy with the first jobs by now
        os.kill(victim, signal.SIGKILL)
        responses = [f.result() for f in futures]
    # The retry rule: a job whose replica died is sent once more; only a second failure
    # would be a 500. With a live replica left, every request succeeds.
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert _total(metric_lines(http, "toonforge_cluster_retries_total")) >= retries_before + 1
    assert http.get("/health").status_code == 200


def test_the_ui_api_runs_on_the_cluster_too(ray_app: RayApp, http: httpx.Client, tmp_path: Path):
    from gradio_client import Client, handle_file

    jobs_before = len(job_lines(ray_app))
    client = Client(ray_app.app.url, verbose=False, download_files=str(tmp_path))
    job = client.submit(handle_file(str(PHOTO)), "default", "toon", "cpu", 0, 100, api_name="/generate")
    stages = set()
    while not job.done():  # the replica streams its stages to the UI's progress bar
        stages.update(unit.desc for unit in job.status().progress_data or [] if unit.desc)
        time.sleep(0.01)
    outputs = job.result()
    assert stages & {"landmarks", "stylize", "fusion", "export"}, stages
    # The first eight outputs, by position; newer ones (the colour print) come after them.
    _stylized, model, _preview, downloads, _table, _chart, quality, report = outputs[:8]
    assert Path(model).read_bytes()[:4] == b"glTF" and quality.startswith("### Quality")
    assert report["backend"] == "cpu" and all(Path(p).stat().st_size > 0 for p in downloads)
    assert len(job_lines(ray_app)) == jobs_before + 1
    assert 'toonforge_jobs_total{interface="ui",outcome="ok"}' in http.get("/metrics").text


def test_a_second_front_end_uses_the_running_application(ray_app: RayApp, tmp_path: Path):
    env = scratch_env(tmp_path, **RAY_QUIET, TOONFORGE_RAY_ADDRESS=ray_app.cluster.address)
    with launched_app(env=env, log_path=LOG_DIR / "app-2.log", timeout_s=120) as second:
        with httpx.Client(base_url=second.url, trust_env=False, timeout=120) as client:
            deadline = time.monotonic() + 60
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, log_tail(second.log_path)
                time.sleep(0.25)
            response = upload(client, PHOTO.read_bytes())
            assert response.status_code == 200, response.text
    text = (LOG_DIR / "app-2.log").read_text(encoding="utf-8", errors="replace")
    # It joined without redeploying (which would restart every replica) and its job ran there.
    assert "using the running Serve application 'toonforge'" in text
    assert "deployed Serve application" not in text and JOB_LINE.search(text)
    assert ray_app.app.process.poll() is None


def test_losing_the_cluster_makes_ready_and_uploads_503_until_it_is_back(
    ray_app: RayApp, http: httpx.Client, tmp_path: Path
):
    ray_app.cluster.stop()
    deadline = time.monotonic() + 30
    while http.get("/ready").status_code != 503:
        assert time.monotonic() < deadline, "the front end did not notice the cluster was gone"
        time.sleep(0.25)
    response = upload(http, PHOTO.read_bytes())
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "backend_unavailable" and int(response.headers["Retry-After"]) > 0
    assert http.get("/health").status_code == 200  # alive, only not ready
    # A new head at the same address (one node with room for both replicas): the front end
    # joins it, deploys again and serves.
    port = int(ray_app.cluster.address.rsplit(":", 1)[1])
    with local_ray_cluster(tmp_path / "cluster-again", node_cpus=(2,), port=port):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while http.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, log_tail(ray_app.app.log_path)
            time.sleep(0.25)
        again = upload(http, PHOTO.read_bytes())
        assert again.status_code == 200, again.text


def test_an_unreachable_cluster_at_start_exits_with_one_clear_line(tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = scratch_env(tmp_path, **RAY_QUIET, TOONFORGE_RAY_ADDRESS=address)
    proc = subprocess.run(
        [sys.executable, "app.py", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot reach the Ray cluster at {address} (TOONFORGE_RAY_ADDRESS)"], proc.stderr
    assert "Traceback" not in proc.stderr


def _total(lines: list[str]) -> float:
    return sum(float(line.split()[-1]) for line in lines)

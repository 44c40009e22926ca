"""The UI in Ray mode: the same page, a generation whose pipeline runs on a Ray Serve replica
(a one-node local cluster), drawn and downloadable as in local mode."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from PIL import Image

pytest.importorskip("ray", reason="Ray mode needs requirements-ray.txt (in requirements-dev.txt)")

from toonforge_testing.launch import launched_app, log_tail, scratch_env  # noqa: E402
from toonforge_testing.ray_cluster import RAY_QUIET, local_ray_cluster  # noqa: E402

from .e2e_ui import EXAMPLES, STARTUP_TIMEOUT_S, TEMPLATES  # noqa: E402

READY_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, artifacts):
    """This module's app: ``python app.py`` in Ray mode, ready (replica warm) before the page."""
    work = tmp_path_factory.mktemp("ray-app")
    log_path = artifacts / "app-ray.log"
    try:
        with local_ray_cluster(work / "cluster", node_cpus=(1,)) as cluster:
            env = scratch_env(
                work, **RAY_QUIET, TOONFORGE_RAY_ADDRESS=cluster.address, TOONFORGE_RAY_MAX_REPLICAS="1"
            )
            with launched_app(env=env, log_path=log_path, timeout_s=STARTUP_TIMEOUT_S, health_path="/") as app:
                deadline = time.monotonic() + READY_TIMEOUT_S
                while httpx.get(f"{app.url}/ready", trust_env=False).status_code != 200:
                    assert time.monotonic() < deadline, log_tail(log_path)
                    time.sleep(0.5)
                yield f"{app.url}/"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback (most recent call last)" not in text, f"see {log_path}"
    assert "job ran on node" in text  # the generation ran on the cluster


def test_generate_in_ray_mode(open_app):
    app = open_app("ray")
    app.upload(EXAMPLES / "astronaut.jpg")
    template = TEMPLATES[0]
    app.choose_template(template)
    app.generate()
    app.wait_for_result(template)
    assert min(app.image_loaded("stylized")) >= 128
    assert min(app.image_loaded("preview")) >= 128
    app.page.locator("#viewer").scroll_into_view_if_needed()
    stats = app.wait_for_drawn_canvas(differs_from=None)
    Image.fromarray(stats.image).save(app.artifacts / f"{app.name}-viewer.png")
    assert "Faces found: 1" in app.quality_text()
    assert len(app.download_links()) == 2
    app.shot("result")
    app.assert_no_console_errors()

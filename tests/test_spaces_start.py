"""The app started the way Hugging Face Spaces starts it: ``python app.py`` with no arguments, in
a scratch copy of the repository, with the Spaces environment set and only what
``requirements.txt`` installs importable (every other package in this environment is hidden, see
:mod:`toonforge_testing.runtime_only`). It must listen on 0.0.0.0; the test itself talks to the
app through 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from pipeline.config import SPACES_VOLUME
from tests.conftest import ROOT
from toonforge_testing.launch import LaunchedApp, free_port, launched_app, log_tail
from toonforge_testing.runtime_only import write_import_blocker

SPACE_ID = "toonforge-tests/toonforge"
PUBLIC_HOST = "toonforge-tests-toonforge.hf.space"  # what the Spaces proxy forwards
PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
LOG_DIR = ROOT / "test-artifacts" / "spaces-start"
STARTUP_TIMEOUT_S = 180
READY_TIMEOUT_S = 60  # workers warming up on a busy 2-core machine
# Variables of this shell that a Space would not have: our own settings, Python's search path,
# a display or OpenGL platform (the app must pick headless rendering itself).
NOT_ON_SPACES = ("TOONFORGE_", "GRADIO_", "SPACE", "SYSTEM", "PYTHON", "PYOPENGL_PLATFORM", "DISPLAY")


@dataclass(frozen=True)
class Space:
    app: LaunchedApp
    port: int
    env: dict[str, str]
    repo: Path
    hidden_modules: set[str]


def copy_repository(source: Path, target: Path) -> None:
    """What a push to the Space would carry: tracked files and untracked ones git does not
    ignore, as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        origin = source / name
        if origin.is_file():  # a file deleted in the working tree is listed but gone
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / name)


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("space")
    repo = work / "repo"
    copy_repository(ROOT, repo)
    hidden_modules, _ = write_import_blocker(work / "runtime-only", repo / "requirements.txt")
    port = free_port("0.0.0.0")
    (work / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_ON_SPACES)}
    env.update(
        GRADIO_SERVER_NAME="0.0.0.0",
        GRADIO_SERVER_PORT=str(port),
        SYSTEM="spaces",
        SPACE_ID=SPACE_ID,
        PYTHONPATH=str(work / "runtime-only"),  # hides what requirements.txt does not install
        PYTHONNOUSERSITE="1",
        TMPDIR=str(work / "tmp"),  # Gradio's cache and the default result folder stay in here
        GRADIO_ANALYTICS_ENABLED="False",  # tests reach no network
    )
    if SPACES_VOLUME.exists():  # never write into this machine's own /data
        env["TOONFORGE_DATA_DIR"] = str(work / "data")
    with launched_app(
        env=env,
        log_path=LOG_DIR / "app.log",
        timeout_s=STARTUP_TIMEOUT_S,
        cwd=repo,
        port=port,
        args=[],
    ) as app:
        yield Space(app, port, env, repo, hidden_modules)
    log = (LOG_DIR / "app.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback (most recent call last)" not in log, log_tail(LOG_DIR / "app.log")


@pytest.fixture(scope="module")
def http(space: Space):
    # trust_env=False: loopback never goes through a proxy from the caller's environment.
    with httpx.Client(base_url=space.app.url, trust_env=False, timeout=120) as client:
        yield client


def test_only_runtime_requirements_are_importable(space: Space):
    assert {"pytest", "playwright", "torch", "diffusers"} <= space.hidden_modules
    code = (
        "import importlib.util, json\n"
        "names = ['pytest', 'playwright', 'torch', 'gradio', 'fastapi', 'mediapipe']\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=space.repo, env=space.env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "pytest": False,
        "playwright": False,
        "torch": False,  # a CPU Space does not install the diffusion stack
        "gradio": True,
        "fastapi": True,
        "mediapipe": True,
    }


def test_listens_on_every_interface_at_the_spaces_port(space: Space):
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(space.app.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("0.0.0.0", space.port)}
    log = space.app.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"listening on http://0.0.0.0:{space.port}" in log
    assert SPACE_ID in log


def test_health_and_readiness_answer(http: httpx.Client):
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["backends"]["cpu"]["available"] is True
    if "/ready" in http.get("/api/openapi.json").json()["paths"]:
        # 503 while the workers warm up on the bundled photo, then 200 for good.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while (ready := http.get("/ready")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert ready.status_code == 200, ready.text


def test_a_real_upload_makes_a_figurine_with_public_urls(http: httpx.Client):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST}
    with open(PHOTO, "rb") as photo:
        response = http.post(
            "/api/upload", files={"file": ("astronaut.jpg", photo, "image/jpeg")}, headers=forwarded
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "cpu" and body["face"]["count"] == 1
    glb_url = body["artifacts"]["glb"]
    # As the Space's visitors see it, not as the proxy reached the container.
    assert glb_url == f"https://{PUBLIC_HOST}/api/results/{body['id']}/figurine.glb"
    glb = http.get(httpx.URL(glb_url).path)
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"


def test_the_ui_page_answers(http: httpx.Client):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = http.get("/config")
    assert config.status_code == 200 and config.json()["title"] == "Toonforge"
    elem_ids = {c.get("props", {}).get("elem_id") for c in config.json()["components"]}
    assert {"photo", "generate", "viewer", "downloads"} <= elem_ids

"""POST /api/upload with ``backend=diffusion``: the tiny SDXL pipeline, loaded through the
production path from TOONFORGE_DIFFUSION_MODEL, yields a figurine over HTTP."""

import io

import pytest
import trimesh
from fastapi.testclient import TestClient

from pipeline.config import Config
from service.http import create_app
from service.runtime import Runtime


def _client(env: dict[str, str], tmp_path) -> tuple[TestClient, Runtime]:
    config = Config.from_env({**env, "TOONFORGE_DATA_DIR": str(tmp_path)})
    runtime = Runtime(config)
    return TestClient(create_app(config, runtime=runtime), raise_server_exceptions=False), runtime


def test_upload_with_the_diffusion_backend(tiny_diffusion_env, photo_bytes, tmp_path):
    client, runtime = _client(tiny_diffusion_env, tmp_path)
    try:
        with client:
            health = client.get("/health").json()
            assert "diffusion" in str(health)
            response = client.post(
                "/api/upload",
                files={"file": ("me.jpg", photo_bytes, "image/jpeg")},
                data={"backend": "diffusion", "style": "toon", "template": "casual", "seed": "5"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["backend"] == "diffusion" and body["template"] == "casual"
            stl = client.get(body["artifacts"]["stl"])
            assert stl.status_code == 200
            assert trimesh.load(io.BytesIO(stl.content), file_type="stl").is_watertight
    finally:
        runtime.close()


@pytest.mark.parametrize("model", ["", "/nonexistent/sdxl-folder"])
def test_missing_weights_give_a_stable_error(model, photo_bytes, tmp_path):
    client, runtime = _client({"TOONFORGE_DIFFUSION_MODEL": model}, tmp_path)
    try:
        with client:
            response = client.post(
                "/api/upload",
                files={"file": ("me.jpg", photo_bytes, "image/jpeg")},
                data={"backend": "diffusion"},
            )
            assert response.status_code == 503
            assert response.json()["error"] == "backend_unavailable"
            assert "TOONFORGE_DIFFUSION_MODEL" in response.json()["detail"]
            # The CPU backend still works on the same server.
            ok = client.post("/api/upload", files={"file": ("me.jpg", photo_bytes, "image/jpeg")})
            assert ok.status_code == 200
    finally:
        runtime.close()

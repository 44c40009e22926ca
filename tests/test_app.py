"""The Gradio UI, driven through its public API with gradio_client."""

import pytest
import trimesh
from gradio_client import Client, handle_file

from toonforge_testing.launch import free_port
from tests.conftest import ROOT

EXAMPLE = ROOT / "assets" / "examples" / "astronaut_closeup.jpg"
NO_FACE = ROOT / "assets" / "examples" / "cat_no_face.jpg"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from dataclasses import replace

    import app
    from pipeline.config import Config

    config = replace(Config.from_env(), data_dir=tmp_path_factory.mktemp("ui-data"))
    demo = app.build_demo(config)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_generate_endpoint_returns_every_output(client):
    stylized, model, preview, downloads, table, chart, quality, report = client.predict(
        handle_file(str(EXAMPLE)), "casual", "comic", "cpu", 3, 90, api_name="/generate"
    )
    assert stylized.endswith(".png") and preview.endswith(".png")
    assert model.endswith(".glb")
    assert sorted(p.rsplit(".", 1)[1] for p in downloads) == ["glb", "stl"]
    stl = trimesh.load(next(p for p in downloads if p.endswith(".stl")))
    assert stl.is_watertight and abs(stl.extents[2] - 90) < 0.1
    stages = [row[0] for row in table["data"]]
    assert stages == ["validate", "landmarks", "stylize", "fusion", "export"]
    assert all(row[1] > 0 for row in table["data"])
    assert quality.startswith("### Quality")
    assert report["template"] == "casual" and report["style"] == "comic"


def test_no_face_is_a_readable_error_and_app_keeps_serving(client):
    with pytest.raises(Exception, match="No face found"):
        client.predict(handle_file(str(NO_FACE)), "default", "toon", "cpu", 0, 100, api_name="/generate")
    result = client.predict(handle_file(str(EXAMPLE)), "default", "toon", "cpu", 0, 100, api_name="/generate")
    assert result[1].endswith(".glb")


def test_app_module_has_no_pipeline_maths():
    source = (ROOT / "app.py").read_text()
    for forbidden in ("import numpy", "import cv2", "import trimesh", "PIL"):
        assert forbidden not in source

"""The Gradio UI, driven through its public API with gradio_client."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import trimesh
from gradio_client import Client, handle_file

from tests.conftest import ROOT
from toonforge_testing.launch import free_port

EXAMPLE = ROOT / "assets" / "examples" / "astronaut_closeup.jpg"
NO_FACE = ROOT / "assets" / "examples" / "cat_no_face.jpg"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from dataclasses import replace

    import app
    from pipeline.config import Config
    from service.runtime import Runtime

    config = replace(Config.from_env(), data_dir=tmp_path_factory.mktemp("ui-data"))
    runtime = Runtime(config)
    demo = app.build_demo(runtime)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        runtime.close()


OLD_OUTPUTS = 8  # before the colour print; callers unpack these by position


def test_generate_endpoint_returns_every_output(client):
    outputs = client.predict(
        handle_file(str(EXAMPLE)), "casual", "comic", "cpu", 3, 90, api_name="/generate"
    )
    assert len(outputs) == OLD_OUTPUTS + 4
    stylized, model, preview, downloads, table, chart, quality, report = outputs[:OLD_OUTPUTS]
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

    # Appended after the old ones: colour print preview, one-colour view, swatches, 3MF.
    print_preview, one_colour, palette, threemf = outputs[OLD_OUTPUTS:]
    assert print_preview.endswith("print_preview.png")
    # the one-colour view: the STL's solid as a grey GLB (y up, metres, like the textured one)
    assert one_colour.endswith("figurine_grey.glb")
    grey = trimesh.load(one_colour, force="mesh")
    assert grey.is_watertight and abs(grey.volume * 1e9 - stl.volume) < 1e-3 * stl.volume
    assert np.allclose(grey.extents[[0, 2, 1]] * 1000, stl.extents, rtol=1e-3)
    assert np.allclose(grey.bounds, trimesh.load(model, force="mesh").bounds, atol=2e-4)
    assert threemf.endswith("figurine.3mf")
    with zipfile.ZipFile(threemf) as archive:
        assert "3D/3dmodel.model" in archive.namelist()
    # the default four filaments, each swatch showing the report's hex and share
    colours = report["print"]["colors"]
    assert len(colours) == 4
    for colour in colours:
        assert colour["hex"] in palette and f"{colour['share']:.0%}" in palette


def test_colour_inputs_come_after_the_old_ones(client):
    """``colors`` and ``palette`` are optional parameters 7 and 8 of /generate."""
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"][
        "parameters"
    ]
    names = [p["parameter_name"] for p in params]
    assert names == ["photo", "template", "style", "backend", "seed", "height_mm", "colors", "palette"]
    assert all(p["parameter_has_default"] for p in params[6:])

    *_, report, _preview, _grey, _palette, _threemf = client.predict(
        handle_file(str(EXAMPLE)), "default", "toon", "cpu", 0, 100, 1, api_name="/generate"
    )
    assert len(report["print"]["colors"]) == 1  # colors=1: the plain one-colour model

    mine = "#ffffff,#1a1a1a"
    *_, report, _preview, _grey, palette, _threemf = client.predict(
        handle_file(str(EXAMPLE)), "default", "toon", "cpu", 0, 100, 4, mine, api_name="/generate"
    )
    used = {c["hex"].lower() for c in report["print"]["colors"]}
    assert used and used <= {"#ffffff", "#1a1a1a"}


@pytest.mark.parametrize(
    "colors, palette, message",
    [
        (4, "#ffffff,#zzzzzz", "not a hex colour"),
        (4, ",".join(["#000000"] * 9), "palette needs 1 to 8"),
        (9, "", "Filament colours must be from 1 to 8; got 9"),
        (0, "#ffffff", "Filament colours must be from 1 to 8; got 0"),  # checked with a palette too
    ],
)
def test_bad_colour_values_are_readable_errors(client, colors, palette, message):
    with pytest.raises(Exception, match=message):
        client.predict(
            handle_file(str(EXAMPLE)), "default", "toon", "cpu", 0, 100, colors, palette, api_name="/generate"
        )


def test_no_face_is_a_readable_error_and_app_keeps_serving(client):
    with pytest.raises(Exception, match="No face found"):
        client.predict(handle_file(str(NO_FACE)), "default", "toon", "cpu", 0, 100, api_name="/generate")
    result = client.predict(handle_file(str(EXAMPLE)), "default", "toon", "cpu", 0, 100, api_name="/generate")
    assert result[1].endswith(".glb")


def test_app_module_has_no_pipeline_maths():
    source = (ROOT / "app.py").read_text()
    for forbidden in ("import numpy", "import cv2", "import trimesh", "PIL"):
        assert forbidden not in source


def _python(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter at the repository root; its last line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _clean_env(tmp_path) -> dict[str, str]:
    """Our environment with a fresh, empty temp folder and no Toonforge or Gradio paths."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOONFORGE_", "GRADIO_"))}
    return {**env, "TMPDIR": str(temp), "GRADIO_ANALYTICS_ENABLED": "False"}


def test_importing_app_builds_nothing(tmp_path):
    """No runtime, no Blocks, no worker, no temp folder until someone asks for them."""
    env = _clean_env(tmp_path)
    report = _python(
        "import gc, json, multiprocessing, threading\n"
        "threads = threading.active_count()\n"
        "import app\n"
        "import gradio as gr\n"
        "from service.runtime import Runtime\n"
        "built = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (Runtime, gr.Blocks))]\n"
        "print(json.dumps({'built': built, 'demo': 'demo' in vars(app),\n"
        "    'new_threads': threading.active_count() - threads,\n"
        "    'children': len(multiprocessing.active_children())}))\n",
        env,
    )
    assert report == {"built": [], "demo": False, "new_threads": 0, "children": 0}
    assert list((tmp_path / "tmp").iterdir()) == []


def test_module_demo_is_built_on_first_access(tmp_path):
    """``gradio app.py`` finds ``demo``: built once, from the environment, when first read."""
    env = {**_clean_env(tmp_path), "TOONFORGE_DATA_DIR": str(tmp_path / "data")}
    report = _python(
        "import json, app\n"
        "import gradio as gr\n"
        "demo = app.demo\n"
        "try:\n"
        "    app.no_such_thing\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "print(json.dumps({'blocks': isinstance(demo, gr.Blocks), 'same': demo is app.demo,\n"
        "    'missing_raises': missing, 'title': demo.title}))\n",
        env,
    )
    assert report == {"blocks": True, "same": True, "missing_raises": True, "title": "Toonforge"}


def test_queue_is_tuned_only_on_the_gradio_version_it_was_measured_on(monkeypatch):
    import gradio as gr

    import app

    tuned = gr.Blocks()
    assert app.tune_queue(tuned, max_size=5)
    assert tuned._queue.max_size == 5
    assert tuned._queue.sleep_when_free == app.QUEUE_POLL_S
    assert tuned._queue.progress_update_sleep_when_free == app.PROGRESS_POLL_S

    monkeypatch.setattr(gr, "__version__", "7.0.0")
    other = gr.Blocks()
    assert not app.tune_queue(other, max_size=5)
    assert other._queue.max_size == 5  # the public setting still applies
    assert other._queue.sleep_when_free != app.QUEUE_POLL_S  # Gradio's own default


def test_flags_win_over_the_environment_which_wins_over_the_default():
    import app
    from pipeline.config import Config

    spaces = Config.from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8123"})
    assert app.listen_address(app.parse_args([]), spaces) == ("0.0.0.0", 8123)
    assert app.listen_address(app.parse_args(["--host", "127.0.0.1"]), spaces) == ("127.0.0.1", 8123)
    assert app.listen_address(app.parse_args(["--port", "9000"]), spaces) == ("0.0.0.0", 9000)
    assert app.listen_address(app.parse_args([]), Config.from_env({})) == ("127.0.0.1", 7860)

"""2 and 3. A face photo becomes a cartoon, a drawn 3D figurine, timings and a quality report,
for every body template; the GLB and STL downloads are files that load."""

from __future__ import annotations

import io
import re

import numpy as np
import trimesh
from PIL import Image

from .e2e_ui import EXAMPLES, STAGES, TEMPLATES


def _check_timings(app) -> None:
    timings = app.timings()
    assert list(timings) == list(STAGES), f"timing table rows: {list(timings)}"
    for stage, ms in timings.items():
        assert 0 < ms < 60_000, f"{stage}: {ms} ms"
    bars = app.chart_bars()
    assert set(bars) == set(STAGES), f"bar chart bars: {sorted(bars)}"
    for stage in STAGES:
        assert abs(bars[stage] - timings[stage]) < 0.06, (stage, bars[stage], timings[stage])


def test_generate_every_template(open_app):
    app = open_app("desktop")
    app.upload(EXAMPLES / "astronaut.jpg")
    previous = None
    for template in TEMPLATES:
        app.choose_template(template)
        app.generate()
        app.wait_for_result(template)

        # the cartoon and the figurine preview are real, loaded pictures
        assert min(app.image_loaded("stylized")) >= 128
        assert min(app.image_loaded("preview")) >= 128

        # the 3D viewer draws the model, and a new one for each body
        app.page.locator("#viewer").scroll_into_view_if_needed()
        stats = app.wait_for_drawn_canvas(differs_from=previous)
        previous = stats.image
        Image.fromarray(stats.image).save(app.artifacts / f"{app.name}-viewer-{template}.png")

        # every stage, in the table and the chart, with plausible numbers
        _check_timings(app)

        # the quality report
        quality = app.quality_text()
        m = re.search(r"Quality (\d+)/100", quality)
        assert m and 0 <= int(m.group(1)) <= 100, quality
        assert "Faces found: 1" in quality
        assert f"template {template}" in quality

        assert len(app.download_links()) == 2
        app.shot(f"result-{template}")
    app.assert_no_console_errors()


def test_downloads_load(open_app, artifacts):
    app = open_app("desktop")
    app.upload(EXAMPLES / "astronaut_closeup.jpg")
    app.choose_template("superhero")
    app.generate()
    app.wait_for_result("superhero")
    links = app.download_links()
    assert set(links) == {"figurine.glb", "figurine.stl"}, links

    # the viewer's own download button serves the same GLB file name
    viewer_link = app.page.locator("#viewer a[data-testid=model3d-download-link]")
    assert (viewer_link.get_attribute("href") or "").endswith("figurine.glb")

    files = {}
    for name in links:
        # a real click on the link, as a user would, caught as a browser download
        with app.page.expect_download() as info:
            app.page.locator(f"#downloads a[download='{name}']").click()
        download = info.value
        assert download.failure() is None
        assert download.suggested_filename == name
        path = artifacts / f"{app.name}-{name}"
        download.save_as(path)
        files[name] = path.read_bytes()
    # the same bytes as the link serves directly
    response = app.page.request.get(links["figurine.glb"])
    assert response.ok and response.body() == files["figurine.glb"]

    # GLB: a scene whose 'head' keeps its PBR base colour texture (the cartoon face)
    scene = trimesh.load(io.BytesIO(files["figurine.glb"]), file_type="glb", force="scene")
    assert "head" in scene.geometry, sorted(scene.geometry)
    head = scene.geometry["head"]
    material = head.visual.material
    assert isinstance(material, trimesh.visual.material.PBRMaterial), type(material)
    texture = material.baseColorTexture
    assert texture is not None, "the head lost its baseColorTexture"
    pixels = np.asarray(texture.convert("RGB"))
    assert min(pixels.shape[:2]) >= 64 and pixels.std() > 10, "the face texture is blank"
    assert head.visual.uv is not None and len(head.visual.uv) == len(head.vertices)
    assert len(scene.geometry) >= 3  # head plus body parts

    # STL: one closed solid, standing 100 mm tall (z up)
    mesh = trimesh.load(io.BytesIO(files["figurine.stl"]), file_type="stl", force="mesh")
    assert mesh.is_watertight
    assert abs(mesh.extents[2] - 100.0) < 1.0, mesh.extents
    assert mesh.volume > 0
    app.assert_no_console_errors()

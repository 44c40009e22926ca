import json
import re

import numpy as np
import pytest
import trimesh
from PIL import Image

from pipeline.runner import Options, run


@pytest.fixture(scope="module")
def result(astronaut, session_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return run(astronaut, Options(template="superhero", height_mm=120), out_dir=out, config=session_config)


def test_all_files_written(result):
    for name in ["figurine.glb", "figurine.stl", "figurine_grey.glb", "figurine.3mf", "preview.png",
                 "print_preview.png", "stylized.png", "report.json"]:
        assert (result.out_dir / name).stat().st_size > 1000 or name == "report.json"


def test_glb_round_trip_keeps_texture_and_part_names(result):
    scene = trimesh.load(result.glb_path)
    assert isinstance(scene, trimesh.Scene)
    assert {"head", "hair", "cape", "emblem", "base"} <= set(scene.geometry)
    head = scene.geometry["head"]
    texture = head.visual.material.baseColorTexture
    assert texture is not None and texture.size[0] >= 256
    assert np.asarray(texture).std() > 10  # a real picture, not a flat colour
    assert head.visual.uv is not None and len(head.visual.uv) == len(head.vertices)
    # glTF units are metres: a 120 mm figurine is 0.12 m tall.
    assert scene.extents[1] == pytest.approx(0.12, rel=0.02)


def test_stl_is_watertight_and_to_scale(result):
    mesh = trimesh.load(result.stl_path)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    assert mesh.body_count == 1
    assert mesh.extents[2] == pytest.approx(120.0, rel=1e-3)  # z up, millimetres
    assert mesh.bounds[0][2] == pytest.approx(0.0, abs=1e-6)


def test_grey_glb_is_the_stl_solid_unmirrored(result):
    """The one-colour viewer's GLB holds the STL's own vertices, turned y up and in metres by a
    rotation: a mirror image (what a viewer's STL loader shows) would not match them."""
    from scipy.spatial import cKDTree

    grey = trimesh.load(result.grey_glb_path, force="mesh")
    assert grey.is_watertight and grey.body_count == 1
    stl = trimesh.load(result.stl_path)
    z_up_to_y_up = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    for mirror, should_match in ((1.0, True), (-1.0, False)):
        points = stl.vertices @ z_up_to_y_up.T / 1000.0 * [mirror, 1.0, 1.0]
        points += grey.bounds.mean(axis=0) - (points.min(axis=0) + points.max(axis=0)) / 2
        gap = cKDTree(points).query(grey.vertices)[0].max()
        assert (gap < 1e-6) == should_match, (mirror, gap)


def test_preview_shows_the_figurine(result):
    preview = np.asarray(Image.open(result.preview_path).convert("RGB"))
    assert preview.shape == (512, 512, 3)
    background = np.all(np.abs(preview.astype(int) - preview[0, 0].astype(int)) < 6, axis=2)
    assert 0.1 < (~background).mean() < 0.8


def test_report_contents(result):
    report = json.loads(result.report_path.read_text())
    for key in ["validate", "landmarks", "stylize", "fusion", "export", "total"]:
        assert report["timings_ms"][key] > 0
    assert report["timings_ms"]["total"] >= sum(
        report["timings_ms"][k] for k in ["validate", "landmarks", "stylize", "fusion", "export"]
    )
    assert report["template"] == "superhero" and report["style"] == "toon" and report["backend"] == "cpu"
    assert report["face"]["count"] == 1 and set(report["face"]["pose"]) == {"yaw", "pitch", "roll"}
    assert 0 <= report["quality"]["score"] <= 100


def test_colour_3mf_of_the_superhero(result):
    """The 3MF beside the STL: the same 120 mm solid, four filaments, PrusaSlicer's painting."""
    import zipfile

    assert result.threemf_path == result.out_dir / "figurine.3mf"
    assert result.print_preview_path == result.out_dir / "print_preview.png"
    with zipfile.ZipFile(result.threemf_path) as archive:
        assert {"3D/3dmodel.model", "Metadata/Slic3r_PE.config", "[Content_Types].xml", "_rels/.rels"} <= set(
            archive.namelist()
        )
        xml = archive.read("3D/3dmodel.model").decode()
    assert 'unit="millimeter"' in xml and xml.count("<object ") == 1
    assert xml.count("slic3rpe:mmu_segmentation=") == xml.count("<triangle ") == result.colour_print.triangles
    zs = [float(z) for z in re.findall(r' z="([-0-9.]+)"', xml)]
    assert min(zs) == pytest.approx(0.0, abs=1e-3) and max(zs) == pytest.approx(120.0, rel=1e-3)
    report = json.loads(result.report_path.read_text())
    colours = report["print"]["colors"]
    assert len(colours) == 4 and all(re.fullmatch(r"#[0-9a-f]{6}", c["hex"]) for c in colours)
    assert sum(c["share"] for c in colours) == pytest.approx(1.0, abs=1e-3)
    assert report["timings_ms"]["export.threemf"] > 0

"""The colour print: figurine.3mf read back by lib3mf and sliced by PrusaSlicer, from the
real pipeline on the astronaut example."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile

import lib3mf
import numpy as np
import pytest
import trimesh
from PIL import Image

from pipeline.colorprint import (
    check_colors,
    choose_palette,
    merge_small_islands,
    parse_palette,
    separate_colours,
    srgb_to_lab,
)
from pipeline.errors import OptionError
from pipeline.export import export_figurine
from pipeline.fusion import fuse_template
from pipeline.landmarks import detect_landmarks
from pipeline.printability import check_printability
from pipeline.wall_thickness import MIN_WALL_MM, wall_thickness
from pipeline.runner import Options, resolve_options, run
from pipeline.stylize import get_stylizer
from pipeline.threemf import CONFIG_PATH, MODEL_PATH, mmu_segmentation_code
from pipeline.validate import validate_image
from tests.conftest import ROOT

EXAMPLE = ROOT / "assets" / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def result(session_config, tmp_path_factory):
    """The whole pipeline at its defaults (4 colours, 100 mm) on the example photo."""
    return run(EXAMPLE, Options(), out_dir=tmp_path_factory.mktemp("colour"), config=session_config)


@pytest.fixture(scope="module")
def fusion(session_config):
    photo = validate_image(EXAMPLE, session_config).image
    face = detect_landmarks(photo, session_config)
    styled = get_stylizer("cpu", session_config).stylize(photo, face, "toon", 0, None)
    return fuse_template(face, styled.image, photo, "default"), styled.image


def read_3mf(path):
    """(model, the one mesh object's vertices (V, 3), triangles (F, 3), triangle properties)."""
    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    reader.SetStrictModeActive(True)
    reader.ReadFromFile(str(path))
    objects = model.GetMeshObjects()
    meshes = []
    while objects.MoveNext():
        meshes.append(objects.GetCurrentMeshObject())
    assert len(meshes) == 1, "one mesh object"
    mesh = meshes[0]
    vertices = np.array([v.Coordinates[0:3] for v in mesh.GetVertices()])
    triangles = np.array([t.Indices[0:3] for t in mesh.GetTriangleIndices()])
    return model, vertices, triangles, mesh.GetAllTriangleProperties()


def decode_painting(code: str) -> int:
    """The extruder of an unsplit painted triangle, decoded the way PrusaSlicer's
    FacetsAnnotation::set_triangle_from_string and TriangleSelector::deserialize read it."""
    bits = []
    for digit in reversed(code):
        value = int(digit, 16)
        bits += [bool(value & (1 << i)) for i in range(4)]
    split_sides = bits[0] | (bits[1] << 1)
    assert split_sides == 0, "our triangles are never split in the painting"
    state = bits[2] | (bits[3] << 1)
    if state == 3:
        state = 3 + sum(bits[4 + i] << i for i in range(4))
    return state


# ---------------------------------------------------------------- options


def test_painting_codes_decode_to_their_extruder():
    assert mmu_segmentation_code(1) == "4" and mmu_segmentation_code(2) == "8"
    assert mmu_segmentation_code(3) == "0C" and mmu_segmentation_code(4) == "1C"
    for extruder in range(1, 17):
        assert decode_painting(mmu_segmentation_code(extruder)) == extruder


def test_palette_parsing():
    assert parse_palette("#FF0000, 00ff00,#0000ff") == ("#ff0000", "#00ff00", "#0000ff")
    assert parse_palette(["#123456"]) == ("#123456",)
    with pytest.raises(OptionError, match="'#12345g'"):
        parse_palette("#ff0000,#12345g")
    with pytest.raises(OptionError, match="'red'"):
        parse_palette(["red"])
    with pytest.raises(OptionError, match="1 to 8 colours; got 9"):
        parse_palette(",".join(["#000000"] * 9))


@pytest.mark.parametrize("bad", [0, 9, -1, "four", "2.5", ""])
def test_colors_out_of_range(bad, session_config):
    with pytest.raises(OptionError, match="Filament colours"):
        check_colors(bad)
    with pytest.raises(OptionError, match="Filament colours"):
        resolve_options(Options(colors=bad), session_config)


def test_resolve_options_palette_sets_colors(session_config):
    options = resolve_options(Options(colors=2, palette=("#FFFFFF", "#000000", "#ff0000")), session_config)
    assert options.palette == ("#ffffff", "#000000", "#ff0000") and options.colors == 3
    with pytest.raises(OptionError, match="'#xyz'"):
        resolve_options(Options(palette=("#xyz",)), session_config)


# ---------------------------------------------------------------- the 3MF, read back


def test_3mf_reads_back_in_lib3mf(result):
    model, vertices, triangles, props = read_3mf(result.threemf_path)
    assert model.GetUnit() == lib3mf.ModelUnit.MilliMeter
    report = json.loads(result.report_path.read_text())
    assert len(triangles) == report["print"]["triangles"]
    # Watertight and consistently wound: every directed edge once, its reverse once.
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    keys = directed[:, 0] * len(vertices) + directed[:, 1]
    reverse = directed[:, 1] * len(vertices) + directed[:, 0]
    assert len(np.unique(keys)) == len(keys)
    assert np.array_equal(np.sort(keys), np.sort(reverse))
    # z up, flat on the bed, the default 100 mm tall.
    assert vertices[:, 2].min() == pytest.approx(0.0, abs=1e-3)
    assert vertices[:, 2].max() == pytest.approx(100.0, rel=1e-3)


def test_every_triangle_has_a_base_material(result):
    model, _, triangles, props = read_3mf(result.threemf_path)
    groups = model.GetBaseMaterialGroups()
    assert groups.MoveNext()
    group = groups.GetCurrentBaseMaterialGroup()
    ids = list(group.GetAllPropertyIDs())
    assert len(ids) == 4 and len(props) == len(triangles)
    used = set()
    for prop in props:
        assert prop.ResourceID == group.GetResourceID()
        corner_ids = list(prop.PropertyIDs)
        assert corner_ids[0] in ids and len(set(corner_ids)) == 1
        used.add(corner_ids[0])
    assert 2 <= len(used) <= 4
    colours = ["#%02x%02x%02x" % (c.Red, c.Green, c.Blue) for c in map(group.GetDisplayColor, ids)]
    assert colours == [c["hex"] for c in json.loads(result.report_path.read_text())["print"]["colors"]]


def test_painting_matches_the_materials_and_the_config(result):
    with zipfile.ZipFile(result.threemf_path) as archive:
        xml = archive.read(MODEL_PATH).decode()
        config = archive.read(CONFIG_PATH).decode()
    pairs = re.findall(r'p1="(\d+)" slic3rpe:mmu_segmentation="([0-9A-F]+)"', xml)
    assert len(pairs) == xml.count("<triangle ")
    assert all(decode_painting(code) == int(p1) + 1 for p1, code in pairs)
    hexes = [c["hex"].upper() for c in json.loads(result.report_path.read_text())["print"]["colors"]]
    assert f"; extruder_colour = {';'.join(hexes)}" in config
    assert "; nozzle_diameter = 0.4,0.4,0.4,0.4" in config


def test_palette_covers_skin_hair_eyes_and_outfit(result):
    """At 4 colours: a skin tone, a near-black for the eyes, the hair and the outfit."""
    colours = json.loads(result.report_path.read_text())["print"]["colors"]
    assert abs(sum(c["share"] for c in colours) - 1.0) < 1e-3
    lab = srgb_to_lab(np.array([[int(c["hex"][i : i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8))
    assert lab[:, 0].min() < 30  # eyes and brows
    assert (lab[:, 0] > 60).any()  # skin
    assert (lab[:, 2] < -20).any()  # the blue outfit
    assert len({c["hex"] for c in colours}) == 4


def test_stl_and_3mf_are_the_same_solid(result):
    _, vertices, triangles, _ = read_3mf(result.threemf_path)
    coloured = trimesh.Trimesh(vertices, triangles, process=False)
    plain = trimesh.load(result.stl_path)
    assert coloured.volume == pytest.approx(plain.volume, rel=1e-3)
    np.testing.assert_allclose(coloured.bounds, plain.bounds, atol=1e-3 * plain.extents.max())


def test_print_preview_shows_the_filament_colours(result):
    preview = np.asarray(Image.open(result.print_preview_path).convert("RGB"))
    assert preview.shape == (512, 512, 3)
    background = np.all(np.abs(preview.astype(int) - preview[0, 0].astype(int)) < 6, axis=2)
    assert 0.1 < (~background).mean() < 0.8
    # Flat filament colours, shaded: the picture has the outfit's blue and the eyes' dark.
    lab = srgb_to_lab(preview[~background])
    assert (lab[:, 2] < -20).mean() > 0.02 and (lab[:, 0] < 25).mean() > 0.005


def test_report_and_timing(result):
    report = json.loads(result.report_path.read_text())
    for key in ["export.threemf", "export.threemf.union", "export.threemf.refine", "export.threemf.write"]:
        assert report["timings_ms"][key] > 0
    # The union ran on its own thread while the GLB, STL and preview were written.
    assert report["timings_ms"]["export.threemf.union_wait"] >= 0
    assert report["print"]["printability"]["bodies"] == 1
    assert result.threemf_path.stat().st_size < 8 * 1024 * 1024


# ---------------------------------------------------------------- separation itself


def test_refinement_keeps_the_solid(fusion):
    fused, stylized = fusion
    scale = 100.0 / fused.solid.extents[1]
    colour = separate_colours(fused.parts, fused.head.texture, 4, mm_per_unit=scale)
    mesh = colour.mesh
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.body_count == 1
    assert len(mesh.faces) > len(fused.solid.faces)  # refined where colours change
    assert mesh.volume == pytest.approx(fused.solid.volume, rel=1e-6)
    np.testing.assert_allclose(mesh.bounds, fused.solid.bounds, atol=1e-6)
    assert len(colour.labels) == len(mesh.faces) and set(np.unique(colour.labels)) <= set(range(4))
    # No colour island left smaller than 0.5 mm across (a disc's area).
    again = merge_small_islands(mesh, colour.labels, 0.5 / scale)
    assert np.array_equal(again, colour.labels)


def test_one_colour_is_the_plain_model(fusion, tmp_path):
    fused, stylized = fusion
    files = export_figurine(fused, stylized, tmp_path, 100.0, colors=1)
    _, vertices, triangles, props = read_3mf(files.threemf_path)
    palette = files.colour_print.palette
    assert len(palette) == 1 and palette[0].share == pytest.approx(1.0)
    assert {tuple(p.PropertyIDs) for p in props} == {(1, 1, 1)}
    with zipfile.ZipFile(files.threemf_path) as archive:
        assert "mmu_segmentation" not in archive.read(MODEL_PATH).decode()
    # Unrefined: the same triangles as the STL.
    assert len(triangles) == len(fused.solid.faces)


def test_user_palette_maps_to_the_nearest_filament(fusion, tmp_path):
    fused, stylized = fusion
    palette = ("#ffffff", "#000000", "#ff0000")
    files = export_figurine(fused, stylized, tmp_path, 80.0, palette=palette)
    assert [c.hex for c in files.colour_print.palette] == list(palette)
    shares = {c.hex: c.share for c in files.colour_print.palette}
    # A light skin and a blue top: mostly white; eyes and trousers black; red for little.
    assert shares["#ffffff"] > 0.4 and shares["#000000"] > 0.05 and shares["#ff0000"] < 0.2
    _, vertices, _, _ = read_3mf(files.threemf_path)
    assert vertices[:, 2].max() == pytest.approx(80.0, rel=1e-3)


def test_choose_palette_keeps_a_small_dark_feature():
    """A skin-coloured surface with 0.5 % near-black eyes and two outfit colours."""
    rgb = np.array([[220, 180, 150], [20, 20, 25], [40, 90, 200], [200, 40, 40], [225, 185, 155]], np.uint8)
    weight = np.array([60.0, 0.5, 20.0, 15.0, 4.5])
    anchors = rgb[[0, 1]]
    four = srgb_to_lab(choose_palette(rgb, weight, 4, anchors))
    assert four[:, 0].min() < 15
    two = srgb_to_lab(choose_palette(rgb, weight, 2, anchors))
    assert two[:, 0].min() < 15 and two[:, 0].max() > 70
    # Deterministic: the same surface gives the same palette.
    assert np.array_equal(choose_palette(rgb, weight, 4, anchors), choose_palette(rgb, weight, 4, anchors))


def test_printability_of_the_default_figurine(result):
    mesh = trimesh.load(result.stl_path)
    report = check_printability(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    assert report.bodies == 1 and report.stands
    assert report.base_area_mm2 > 500  # the round stand: a flat bottom to stick to the bed
    assert report.needs_supports  # the chibi head overhangs the neck
    assert wall_thickness(mesh, samples=1500, max_distance=3.0).min >= MIN_WALL_MM


# ---------------------------------------------------------------- PrusaSlicer


def _slice(path, out, *extra):
    slicer = shutil.which("prusa-slicer")
    assert slicer, "prusa-slicer is not installed (tools/setup.sh --dev installs it)"
    proc = subprocess.run(
        [slicer, "--export-gcode", str(path), "--output", str(out), *extra],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out.read_text()


@pytest.fixture(scope="module")
def gcode_3mf(result, tmp_path_factory):
    """Sliced as a four-tool printer, the way a user picks a multi-material profile."""
    out = tmp_path_factory.mktemp("slice") / "colour.gcode"
    return _slice(result.threemf_path, out, "--nozzle-diameter", "0.4,0.4,0.4,0.4", "--use-relative-e-distances")


def test_prusaslicer_slices_the_3mf_changing_tools(gcode_3mf):
    tools = set(re.findall(r"^T(\d+)\s*$", gcode_3mf, flags=re.M))
    assert {"0", "1", "2", "3"} <= tools  # every filament is printed
    assert re.search(r"^; estimated printing time \(normal mode\) = ", gcode_3mf, flags=re.M)
    # The embedded settings were used: the extruder colours and supports from the 3MF.
    assert re.search(r"^; support_material = 1$", gcode_3mf, flags=re.M)
    assert re.search(r"^; support_material_buildplate_only = 1$", gcode_3mf, flags=re.M)


def test_prusaslicer_slices_the_stl(result, tmp_path):
    gcode = _slice(result.stl_path, tmp_path / "plain.gcode")
    assert "; estimated printing time" in gcode
    assert not set(re.findall(r"^T([1-9])\s*$", gcode, flags=re.M))


def test_outfit_colours_worst_first():
    """Skin, eyes and hair taken: the next filament goes to the outfit colour that would print
    worst without one (area x Delta E), not simply to the largest."""
    from pipeline.colorprint import _worst_first

    chosen = [(205, 170, 146), (44, 33, 36), (120, 97, 52)]  # skin, eyes, brown hair
    suit, cape = (31, 79, 191), (200, 32, 42)
    assert _worst_first({cape: 0.22, suit: 0.19}, chosen)[0] == suit  # red is nearer the skin
    top, jeans = (94, 140, 74), (59, 95, 156)
    assert _worst_first({top: 0.19, jeans: 0.10}, chosen) == [top, jeans]
    assert _worst_first({}, chosen) == []


def test_a_precomputed_union_gives_the_same_print(fusion):
    """A fusion stage that unions with coloured_union can hand its surface over."""
    from pipeline.colorprint import coloured_union

    fused, _ = fusion
    surface = coloured_union(fused.parts)
    assert surface.faces.shape == fused.solid.faces.shape
    given = separate_colours(fused.parts, fused.head.texture, 3, surface=surface)
    own = separate_colours(fused.parts, fused.head.texture, 3)
    assert "union" not in given.timings_ms and "union" in own.timings_ms
    assert np.array_equal(given.labels, own.labels)
    np.testing.assert_array_equal(given.mesh.faces, own.mesh.faces)


def test_skin_shadow_comes_after_the_outfit_and_before_a_second_outfit_colour(fusion):
    """Skin, eyes, hair and the shirt first (each keeps a filament at 4 colours); then the
    skin's shadow, ahead of the trousers: a face in three tones reads as a face."""
    from pipeline.colorprint import coloured_union, likeness_anchors

    fused, _ = fusion
    texture = np.ascontiguousarray(fused.head.texture[::2, ::2])
    anchors = likeness_anchors(coloured_union(fused.parts), fused.parts, texture)
    lab = srgb_to_lab(anchors.colours)
    face = srgb_to_lab(anchors.face)
    skin, dark, shadow = face[0], face[1], face[-1]
    assert len(anchors.face) == 4  # skin, dark features, hair, shadow
    assert dark[0] < 30 < shadow[0] < skin[0] - 10
    assert lab[3, 2] < -20  # the blue shirt keeps the fourth slot
    np.testing.assert_allclose(lab[4], shadow, atol=0.5)  # the shadow the fifth
    five = srgb_to_lab(choose_palette(
        np.vstack([anchors.colours, anchors.face]), np.ones(len(anchors.colours) + len(anchors.face)), 5, anchors.colours
    ))
    assert np.min(np.linalg.norm(five - shadow, axis=1)) < 1.0
    # The face may print in skin, features, hair and shadow, never in the shirt's blue.
    from pipeline.colorprint import _face_filaments

    four = choose_palette(anchors.colours, np.ones(len(anchors.colours)), 4, anchors.colours)
    allowed = _face_filaments(fused.parts, anchors, four)
    assert sorted(allowed.tolist()) == [0, 1, 2] and srgb_to_lab(four)[3, 2] < -20


def test_face_texels_match_lightness_first_and_only_face_filaments():
    """A greyish cheek shadow (L 50) prints in the mid-tone hair filament (L 52), not in the
    skin filament nearer in CIELAB (L 78): matched plainly, the face's shading flattens into
    skin. An outfit filament never appears on the face."""
    from pipeline.colorprint import label_image

    skin, dark, hair, shirt = [225, 185, 156], [59, 39, 30], [188, 101, 35], [74, 110, 199]
    palette = np.array([skin, dark, hair, shirt], np.uint8)
    face = np.array([0, 1, 2])
    shadow = np.array([[[141, 113, 94]]], np.uint8)
    assert label_image(shadow, palette)[0, 0] == 0  # plain nearest colour: skin
    assert label_image(shadow, palette, allowed=face, ab_weight=0.5)[0, 0] == 2
    blueish = np.array([[[80, 105, 170]]], np.uint8)
    assert label_image(blueish, palette)[0, 0] == 3
    assert label_image(blueish, palette, allowed=face, ab_weight=0.5)[0, 0] in face


def test_outfit_parts_never_print_in_a_skin_like_filament():
    """At 4 colours a superhero's red cape was nearest the skin filament and printed as bare
    skin; a part that is not skin-coloured takes the nearest other filament instead, while
    the skin-coloured neck and hands still print in skin."""
    from pipeline.colorprint import _part_filaments

    skin, dark, grey_hair, blue = [208, 143, 105], [45, 31, 34], [109, 100, 94], [31, 79, 191]
    palette = np.array([skin, dark, grey_hair, blue], np.uint8)
    cape, emblem, neck, suit = [200, 40, 40], [245, 200, 40], [205, 140, 100], [30, 80, 190]
    parts = np.array([cape, emblem, neck, suit], np.uint8)
    from pipeline.colorprint import nearest_colour

    assert nearest_colour(parts, palette)[0] == 0  # plainly nearest: the cape in skin
    labels = _part_filaments(parts, palette, np.array([skin], np.uint8))
    assert labels[0] in (1, 2) and labels[1] in (1, 2)
    assert labels[2] == 0 and labels[3] == 3


def test_superhero_cape_is_not_printed_in_skin(session_config):
    """On a real superhero figurine at 4 colours (skin, eyes, grey hair, suit: Obama's
    portrait), the red cape, emblem and boots map to a filament other than the skin's."""
    from pipeline.colorprint import _part_filaments, nearest_colour

    photo = validate_image(ROOT / "assets" / "people" / "obama.jpg", session_config).image
    face = detect_landmarks(photo, session_config)
    styled = get_stylizer("cpu", session_config).stylize(photo, face, "toon", 0, None)
    fused = fuse_template(face, styled.image, photo, "superhero")
    colour = separate_colours(fused.parts, fused.head.texture, 4)
    part_rgb = np.array([p.rgb for p in fused.parts], np.uint8)
    skin = np.array([fused.head.skin_rgb], np.uint8)
    red = srgb_to_lab(part_rgb)[:, 1] > 40
    assert red.any(), [p.name for p in fused.parts]
    skin_filament = nearest_colour(skin, colour.palette_rgb)[0]
    assert np.any(nearest_colour(part_rgb[red], colour.palette_rgb) == skin_filament)  # as it was
    labels = _part_filaments(part_rgb, colour.palette_rgb, skin)
    assert not np.any(labels[red] == skin_filament)
    assert np.all(labels[~red & (np.linalg.norm(srgb_to_lab(part_rgb) - srgb_to_lab(skin), axis=1) < 10)] == skin_filament)

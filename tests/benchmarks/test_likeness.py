"""The figurine of each real test person looks like them and prints (issue 10, item 8).

The real pipeline runs once per test portrait in ``assets/people/`` (module-scoped fixture); the
renders and measures are those of ``benchmarks/likeness.py``. The reference hair colour is the
mean CIELAB colour inside boxes a person marked by hand on each photo (``people.json``), never
the pipeline's own segmentation; colours are compared with CIEDE2000. A person whose hair is
under a hat (Grace Hopper's cap) is left out of the hair-colour test: the photo shows the cap.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from benchmarks.likeness import (
    HAIR_DELTA_E_LIMIT,
    KINDS,
    PHOTO_UPSAMPLE,
    BenchmarkResult,
    KindMeasure,
    Person,
    PersonMeasure,
    PersonRenders,
    descriptor_distance,
    face_descriptor,
    figurine_hair_rgb,
    hair_delta_e,
    load_people,
    load_photo,
    make_renders,
    markdown,
    measure_person,
    photo_descriptors,
    photo_hair_lab,
    picture_sheet,
)
from pipeline.wall_thickness import MIN_WALL_MM, wall_thickness

PEOPLE = load_people()
IDS = [p.id for p in PEOPLE]
WITH_HAIR = [p.id for p in PEOPLE if p.hair_boxes and not p.hat]
BALD = [p.id for p in PEOPLE if p.bald]
HEIGHT_TOLERANCE_MM = 0.01


@pytest.fixture(scope="module")
def descriptors():
    return photo_descriptors(PEOPLE)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """The pipeline's files and the three compared images, per person: one run each."""
    root = tmp_path_factory.mktemp("likeness")
    return {p.id: make_renders(p, root / p.id) for p in PEOPLE}


@pytest.fixture(scope="module")
def measures(renders, descriptors):
    return {pid: measure_person(r, descriptors) for pid, r in renders.items()}


# --------------------------------------------------------------------------- the measure itself


def test_the_set_has_enough_people_for_an_identification_test():
    assert len(PEOPLE) >= 6 and len(set(IDS)) == len(IDS)
    assert BALD, "no bald portrait: the bald test would test nothing"
    for person in PEOPLE:
        width, height = Image.open(person.photo_path).size
        assert max(width, height) <= 1024
        for x0, y0, x1, y1 in person.hair_boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (person.id, (x0, y0, x1, y1))
        assert not (person.bald and person.hair_boxes), f"{person.id}: bald people have no hair boxes"


def test_every_photo_is_a_face_and_far_from_every_other_person(descriptors):
    assert all(d is not None for d in descriptors.values()), [k for k, d in descriptors.items() if d is None]
    for a in IDS:
        for b in IDS:
            if a != b:
                # dlib's own threshold for "same person" is 0.6; these are different people.
                assert descriptor_distance(descriptors[a], descriptors[b]) > 0.6, (a, b)


def test_recogniser_sees_the_same_person_in_another_crop_and_nobody_in_a_blank_image():
    photo = load_photo(PEOPLE[0])
    h, w = photo.shape[:2]
    crop = photo[: h * 3 // 4, w // 8 : w * 7 // 8]  # same person, other framing
    same = descriptor_distance(face_descriptor(photo, PHOTO_UPSAMPLE), face_descriptor(crop, PHOTO_UPSAMPLE))
    assert same < 0.35
    blank = np.full((256, 256, 3), 200, np.uint8)
    assert face_descriptor(blank, 2) is None
    assert descriptor_distance(None, face_descriptor(photo, 1)) == 1.0


def test_hair_reference_is_the_mean_lab_colour_inside_the_boxes():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = (200, 170, 90)  # fair hair on the left, dark background on the right
    person = Person(
        id="synthetic", photo_path=PEOPLE[0].photo_path, hair_boxes=((2, 2, 18, 38),), bald=False,
        hat=False, turned=False, occlusion="none", beard=False, glasses=False, glasses_rimless=False, licence="", freely_licensed=True, redistributable=True,
    )
    lab = photo_hair_lab(person, image)
    assert hair_delta_e(lab, np.array([200, 170, 90]) / 255.0) < 0.01
    assert hair_delta_e(lab, np.zeros(3)) > 50


def test_figurine_hair_colour_is_read_from_the_glb_as_a_viewer_shows_it(tmp_path):
    scene = trimesh.Scene()
    linear = [0.2, 0.1, 0.05, 1.0]
    for name, colour in (("hair", linear), ("head", [0.8, 0.6, 0.5, 1.0])):
        mesh = trimesh.creation.icosphere(subdivisions=1)
        mesh.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name=name, baseColorFactor=colour)
        )
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    path = tmp_path / "parts.glb"
    scene.export(path, file_type="glb")
    srgb = figurine_hair_rgb(path)
    expected = 1.055 * np.array(linear[:3]) ** (1 / 2.4) - 0.055  # sRGB encoding (all above its linear toe)
    np.testing.assert_allclose(srgb, expected, atol=2 / 255)  # the GLB may store 8-bit colours
    no_hair = trimesh.Scene()
    no_hair.add_geometry(trimesh.creation.box(), node_name="head", geom_name="head")
    no_hair.export(tmp_path / "bald.glb", file_type="glb")
    assert figurine_hair_rgb(tmp_path / "bald.glb") is None


def test_the_public_picture_sheet_shows_only_people_the_repository_may_carry(tmp_path):
    """Measured, yes; pictured, no: the sheet is committed and the cartoon copies the photo."""
    people = [
        Person(
            id=pid, photo_path=tmp_path / f"{pid}.jpg", hair_boxes=(), bald=False, hat=False, turned=False,
            occlusion="none", beard=False, glasses=False, glasses_rimless=False, licence="", freely_licensed=free, redistributable=free,
        )
        for pid, free in (("free_a", True), ("still_b", False), ("free_c", True))
    ]
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    measures, renders = [], []
    for person in people:
        kinds = {k: KindMeasure(True, 0.5, True, {person.id: 0.5}) for k in KINDS}
        measures.append(PersonMeasure(person.id, True, kinds, None, False, {}))
        photo = red if not person.redistributable else np.full((64, 64, 3), 90, np.uint8)
        renders.append(
            PersonRenders(person, photo, tmp_path, tmp_path, tmp_path, 100.0, {k: photo for k in KINDS})
        )
    distances = {a.id: {b.id: 0.0 if a is b else 0.9 for b in people} for a in people}
    result = BenchmarkResult(measures, renders, distances, {})
    sheet = np.asarray(picture_sheet(result, tile=50))
    assert sheet.shape[0] == 18 + 2 * (50 + 18)  # two rows, not three
    red_pixels = (sheet[..., 0] > 200) & (sheet[..., 1] < 50)
    assert not red_pixels.any(), "the non-redistributable person's images are on the sheet"
    doc = markdown(result, None, "sheet.png", "likeness.json")
    assert "| still_b |" in doc and "Measured above but not pictured: still_b." in doc


# --------------------------------------------------------------------------- the figurines


@pytest.mark.parametrize("person_id", IDS)
def test_grey_print_is_seen_as_a_face(person_id, measures):
    grey = measures[person_id].kinds["grey"]
    assert grey.face_found, f"{person_id}: dlib finds no face in the grey print"


def _grey_nearest(measures) -> tuple[list[str], dict[str, float]]:
    nearest = [pid for pid, m in measures.items() if m.kinds["grey"].nearest_own]
    distances = {pid: round(m.kinds["grey"].distance, 2) for pid, m in measures.items()}
    return nearest, distances


# Issue 10's target, not reached yet (3 of 10 today, median 0.677): kept as the goal, and
# strict, so the day it passes the marker must go.
@pytest.mark.xfail(strict=True, reason="issue 10 target not met yet: grey print nearest its own photo for 3 of 10")
def test_grey_print_is_nearest_its_own_photo_for_most_people(measures):
    nearest, distances = _grey_nearest(measures)
    assert len(nearest) > len(PEOPLE) / 2, f"nearest own photo: {nearest}; distances: {distances}"


def test_grey_print_likeness_does_not_fall_below_todays(measures):
    """What the sculpted head reaches today (median 0.677, 3 of 10 nearest; the old egg head:
    0.79 and 1 of 10): a change that loses it fails here."""
    nearest, distances = _grey_nearest(measures)
    assert len(nearest) >= 3, f"nearest own photo: {nearest}; distances: {distances}"
    assert float(np.median(list(distances.values()))) <= 0.71, distances


@pytest.mark.parametrize("person_id", WITH_HAIR)
def test_figurine_hair_colour_matches_the_hand_marked_hair(person_id, renders):
    person = next(p for p in PEOPLE if p.id == person_id)
    figurine = figurine_hair_rgb(renders[person_id].glb_path)
    assert figurine is not None, f"{person_id} has hair in the photo but the figurine has no 'hair' part"
    delta = hair_delta_e(photo_hair_lab(person, renders[person_id].photo), figurine)
    assert delta <= HAIR_DELTA_E_LIMIT, (
        f"{person_id}: hair ΔE2000 {delta:.1f} > {HAIR_DELTA_E_LIMIT}; "
        f"figurine sRGB {np.round(figurine * 255)}"
    )


@pytest.mark.parametrize("person_id", BALD)
def test_bald_head_gets_no_hair_volume(person_id, renders):
    hair = figurine_hair_rgb(renders[person_id].glb_path)
    assert hair is None, f"{person_id} is bald but got a 'hair' part"


@pytest.mark.parametrize("person_id", IDS)
def test_stl_is_one_watertight_solid_at_the_requested_height(person_id, renders):
    run = renders[person_id]
    mesh = trimesh.load(run.stl_path, force="mesh")
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.extents[2] == pytest.approx(run.height_mm, abs=HEIGHT_TOLERANCE_MM)
    assert mesh.bounds[0][2] == pytest.approx(0.0, abs=HEIGHT_TOLERANCE_MM)


@pytest.mark.parametrize("person_id", IDS)
def test_no_wall_is_thinner_than_the_printable_minimum(person_id, renders):
    mesh = trimesh.load(renders[person_id].stl_path, force="mesh")
    walls = wall_thickness(mesh, samples=2000, max_distance=3.0)
    thin = walls.thinner_than(MIN_WALL_MM)
    assert thin == 0, (
        f"{person_id}: {thin} of {walls.samples} sampled points have a wall under {MIN_WALL_MM} mm "
        f"(thinnest {walls.min:.2f} mm at {np.round(walls.thinnest_point, 1)} mm, z up)"
    )


def test_colour_print_shows_each_filament_in_its_own_colour(tmp_path):
    """The colour print's render draws a filament as the textured render draws a part of the
    same colour: the 3MF's sRGB colours in linear light, as the GLB's materials are."""
    from benchmarks.likeness import render_colour_print, render_figurine_front
    from pipeline.body import FigurinePart
    from pipeline.export import figure_scene
    from pipeline.threemf import PrintSettings, write_3mf

    skin = (208, 143, 105)
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    glb = tmp_path / "ball.glb"
    figure_scene([FigurinePart("head", ball, skin)], metres=0.1).export(glb)
    solid = ball.copy()
    solid.apply_translation(-solid.bounds[0])
    solid.apply_scale(100.0)
    solid.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # y up -> z up
    solid.apply_translation([0.0, 0.0, -solid.bounds[0][2]])
    threemf = write_3mf(
        tmp_path / "ball.3mf", solid.vertices, solid.faces, np.zeros(len(solid.faces), np.int64),
        ["#%02x%02x%02x" % skin], PrintSettings(supports=False),
    )
    painted = render_colour_print(threemf, glb)
    textured = render_figurine_front(glb)
    centre = (slice(140, 180), slice(140, 180))
    assert np.abs(painted[centre].mean(axis=(0, 1)) - textured[centre].mean(axis=(0, 1))).max() < 6

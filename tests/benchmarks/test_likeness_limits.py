"""benchmarks/likeness_limits.py: the repaintings it measures, on a scene built here."""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image

from benchmarks.likeness_limits import (
    CLAY_SRGB,
    GLB_KINDS,
    grey_texture,
    palette_texture,
    restyled,
    tone_texture,
)
from pipeline.body import FigurinePart
from pipeline.export import figure_scene

SKIN, INK, SHADOW = (220, 180, 150), (30, 20, 20), (170, 120, 100)


def face_texture() -> np.ndarray:
    texture = np.empty((60, 60, 3), np.uint8)
    texture[:] = SKIN
    texture[25:30, 10:25] = INK  # an eye
    texture[40:50, 5:15] = SHADOW
    return texture


def test_grey_texture_puts_the_skin_at_clay_and_keeps_ink_darker():
    texture = face_texture()
    whole = grey_texture(texture, ink_only=False)
    ink = grey_texture(texture, ink_only=True)
    assert whole[0, 0, 0] == CLAY_SRGB and ink[0, 0, 0] == CLAY_SRGB
    assert whole[27, 15, 0] < 40 and ink[27, 15, 0] == whole[27, 15, 0]
    # a shadow is not ink: painted in the whole face, clay in the ink-only one
    assert whole[45, 10, 0] < CLAY_SRGB - 20 and ink[45, 10, 0] == CLAY_SRGB
    assert (whole[..., 0] == whole[..., 2]).all()


def test_palette_texture_uses_only_the_nearest_filaments():
    palette = np.array([[230, 190, 160], [20, 20, 20], [40, 90, 200]], np.uint8)
    out = palette_texture(face_texture(), palette)
    assert {tuple(c) for c in out.reshape(-1, 3)} == {(230, 190, 160), (20, 20, 20)}
    assert tuple(out[27, 15]) == (20, 20, 20) and tuple(out[0, 0]) == (230, 190, 160)


def test_tone_texture_keeps_the_face_in_its_own_best_colours():
    texture = face_texture()
    two, three = tone_texture(texture, 2), tone_texture(texture, 3)
    assert {tuple(c) for c in three.reshape(-1, 3)} == {SKIN, INK, SHADOW}  # 3 tones: exact
    assert len({tuple(c) for c in two.reshape(-1, 3)}) == 2
    # 2 tones: the small shadow joins the skin, the eye stays dark
    assert np.abs(two[0, 0].astype(int) - SKIN).max() <= 3 and tuple(two[27, 15]) == INK


def test_restyled_repaints_the_glb(tmp_path):
    head = trimesh.creation.icosphere(subdivisions=2)
    uv = (head.vertices[:, :2] + 1) / 2
    head.visual = trimesh.visual.TextureVisuals(
        uv=uv, material=trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(face_texture()))
    )
    hair = trimesh.creation.icosphere(subdivisions=1).apply_translation([0, 1.2, 0])
    parts = [FigurinePart("head", head, SKIN, textured=True), FigurinePart("hair", hair, (40, 30, 20))]
    path = tmp_path / "figurine.glb"
    figure_scene(parts, 0.1).export(path, file_type="glb")
    palette = np.array([[230, 190, 160], [20, 20, 20]], np.uint8)
    painted = {kind: restyled(path, kind, palette) for kind in GLB_KINDS}

    def texture(scene):
        return np.asarray(scene.geometry["head"].visual.material.baseColorTexture.convert("RGB"))

    def hair_factor(scene):
        return np.asarray(scene.geometry["hair"].visual.material.baseColorFactor[:3], float)

    assert (texture(painted["clay"]) == CLAY_SRGB).all()
    assert texture(painted["clay_ink"]).min() < 40 and texture(painted["clay_face"]).std() > 0
    assert len({tuple(c) for c in texture(painted["palette_per_pixel"]).reshape(-1, 3)}) == 2
    # hair: clay, except at its own (darker) lightness in clay_ink_hair; its colour in the palette one
    assert np.allclose(hair_factor(painted["clay"]), hair_factor(painted["clay_ink"]))
    assert hair_factor(painted["clay_ink_hair"]).max() < hair_factor(painted["clay"]).min()
    assert hair_factor(painted["palette_per_pixel"])[0] > hair_factor(painted["palette_per_pixel"])[2]
    assert len({tuple(c) for c in texture(painted["face_in_3_tones"]).reshape(-1, 3)}) == 3
    assert np.allclose(hair_factor(painted["face_in_2_tones"]), hair_factor(painted["palette_per_pixel"]))

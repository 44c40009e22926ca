import numpy as np
import pytest

from pipeline.fusion import fuse_template
from pipeline.stylize.cartoon import CartoonStylizer


@pytest.fixture(scope="module")
def stylized(astronaut, astronaut_face):
    return CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image


@pytest.mark.parametrize("template", ["default", "superhero", "casual"])
def test_every_template_fuses_into_one_watertight_solid(astronaut, astronaut_face, stylized, template):
    fusion = fuse_template(astronaut_face, stylized, astronaut, template)
    solid = fusion.solid
    assert solid.is_watertight and solid.is_winding_consistent and solid.volume > 0
    assert solid.body_count == 1  # one printable piece, head seated on the neck
    names = {p.name for p in fusion.parts}
    assert {"head", "hair", "neck", "base"} <= names
    head = next(p for p in fusion.parts if p.name == "head")
    neck = next(p for p in fusion.parts if p.name == "neck")
    # The head sits on the neck: its lowest point is below the neck's top.
    assert head.mesh.bounds[0][1] < neck.mesh.bounds[1][1]
    # The figure stands on its base (ground at y = 0).
    assert solid.bounds[0][1] < 0 < solid.bounds[1][1]
    # Chibi proportions: the head is over a third of the height.
    height = solid.bounds[1][1] - solid.bounds[0][1]
    assert (head.mesh.bounds[1][1] - head.mesh.bounds[0][1]) / height > 0.33
    assert 0 <= fusion.quality.score <= 100 and fusion.quality.reasons


def test_quality_reflects_the_photo(astronaut, astronaut_face, stylized):
    good = fuse_template(astronaut_face, stylized, astronaut, "default").quality
    assert good.components["detection"] > 0.8 and good.components["mesh"] == 1.0
    dark = (astronaut * 0.12).astype(np.uint8)
    poor = fuse_template(astronaut_face, stylized, dark, "default").quality
    assert poor.score < good.score
    assert any("Lighting" in r for r in poor.reasons)


@pytest.fixture(scope="module")
def printed(astronaut, astronaut_face, stylized):
    """The astronaut's figurine as printed: the STL solid at 100 mm, plus its fusion."""
    from pipeline.export import printable_solid

    fusion = fuse_template(astronaut_face, stylized, astronaut, "default")
    return fusion, printable_solid(fusion.solid, 100.0)


def test_the_print_is_one_watertight_solid_at_the_requested_height(printed):
    _, stl = printed
    assert stl.is_watertight and stl.body_count == 1
    assert stl.extents[2] == pytest.approx(100.0, abs=1e-6)


def test_the_head_has_ears_in_the_print(printed):
    fusion, _ = printed
    ears = next(p for p in fusion.parts if p.name == "ears")
    head = next(p for p in fusion.parts if p.name == "head")
    # One ear each side of the head, standing out of it.
    assert ears.mesh.bounds[0][0] < head.mesh.bounds[0][0] + 0.02
    assert ears.mesh.bounds[1][0] > head.mesh.bounds[1][0] - 0.02
    assert len(ears.mesh.split(only_watertight=True)) == 2


def test_walls_are_at_least_1_2_mm_thick(printed):
    """Rays cast inwards from sampled surface points: ears, hair (fringe, parting), face relief
    and body are all at least 1.2 mm thick."""
    from pipeline.wall_thickness import MIN_WALL_MM, wall_thickness

    fusion, stl = printed
    walls = wall_thickness(stl, samples=1200, max_distance=3.0)
    assert walls.thinner_than(MIN_WALL_MM) == 0, f"thinnest {walls.min:.2f} mm at {walls.thinnest_point}"
    # The ears on their own, in millimetres: thick enough to print standing out.
    scale = 100.0 / (fusion.solid.bounds[1][1] - fusion.solid.bounds[0][1])
    ears = next(p for p in fusion.parts if p.name == "ears").mesh.copy()
    ears.apply_scale(scale)
    assert wall_thickness(ears, samples=400).min >= MIN_WALL_MM

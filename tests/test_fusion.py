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

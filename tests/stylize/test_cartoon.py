import cv2
import numpy as np
import pytest

from pipeline.face_regions import feature_groups
from pipeline.stylize import backend_availability, check_style, get_stylizer
from pipeline.stylize.cartoon import CartoonStylizer
from pipeline.errors import OptionError, UnknownStyleError


def _colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3) // 8, axis=0))


@pytest.mark.parametrize("style", CartoonStylizer.styles)
def test_cartoon_flattens_colours_and_keeps_size(astronaut, astronaut_face, style):
    result = CartoonStylizer().stylize(astronaut, astronaut_face, style, seed=0)
    assert result.image.shape == astronaut.shape and result.image.dtype == np.uint8
    assert result.backend == "cpu" and result.style == style
    assert _colours(result.image) < _colours(astronaut) / 3
    assert set(result.timings_ms) >= {"matte", "flatten", "lines"}


def test_background_is_replaced_and_person_kept(astronaut, astronaut_face):
    out = CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image
    mask = astronaut_face.person_mask
    background = out[mask < 0.05]
    # The backdrop is a smooth gradient: tiny spread along each row.
    assert background.std(axis=0).max() < 40
    assert np.abs(out[mask > 0.95].astype(int) - astronaut[mask > 0.95].astype(int)).mean() < 60


def test_eyes_and_mouth_stay_sharper_than_the_rest(astronaut, astronaut_face):
    out = CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image
    grey_in, grey_out = (cv2.cvtColor(i, cv2.COLOR_RGB2GRAY) for i in (astronaut, out))
    lm = astronaut_face.landmarks_px
    eye = feature_groups()["left_eye"]
    x0, y0 = lm[eye, :2].min(axis=0).astype(int)
    x1, y1 = lm[eye, :2].max(axis=0).astype(int) + 1
    # Inside the eye the cartoon follows the photo closely (not flattened away).
    corr = np.corrcoef(grey_in[y0:y1, x0:x1].ravel(), grey_out[y0:y1, x0:x1].ravel())[0, 1]
    assert corr > 0.6


def test_styles_differ_and_seed_is_deterministic(astronaut, astronaut_face):
    stylizer = CartoonStylizer()
    toon_a = stylizer.stylize(astronaut, astronaut_face, "toon", seed=3).image
    toon_b = stylizer.stylize(astronaut, astronaut_face, "toon", seed=3).image
    comic = stylizer.stylize(astronaut, astronaut_face, "comic", seed=3).image
    assert np.array_equal(toon_a, toon_b)
    assert np.abs(toon_a.astype(int) - comic.astype(int)).mean() > 10


def test_registry(session_config):
    stylizer = get_stylizer("cpu", session_config)
    assert stylizer is get_stylizer("cpu", session_config)
    assert backend_availability(session_config)["cpu"].available
    with pytest.raises(UnknownStyleError, match="toon"):
        check_style(stylizer, "watercolour")


def test_unknown_style_is_an_option_error(astronaut, astronaut_face):
    """A direct call fails like the diffusion backend does, not with a KeyError."""
    with pytest.raises(OptionError, match="Choose one of: toon, comic") as info:
        CartoonStylizer().stylize(astronaut, astronaut_face, "watercolour", seed=0)
    assert isinstance(info.value, UnknownStyleError) and info.value.code == "unknown_style"

import io

import numpy as np
import pytest
from PIL import Image

from pipeline import errors
from pipeline.runner import STAGES, Options, resolve_options, run
from tests.conftest import encode


def _variants(astronaut: np.ndarray) -> dict[str, bytes]:
    img = Image.fromarray(astronaut)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; viewers turn it back upright
    out = {
        "exif_rotated": encode(np.asarray(img.rotate(-90, expand=True)), "JPEG", exif=exif.tobytes()),
        "grayscale": encode(np.asarray(img.convert("L")), "PNG"),
        "rgba": encode(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]), "PNG"),
        "small": encode(np.asarray(img.crop((120, 0, 340, 220)).resize((200, 200))), "JPEG"),
        "large": encode(np.asarray(img.resize((2400, 2400), Image.Resampling.BICUBIC)), "JPEG"),
    }
    buf = io.BytesIO()
    img.convert("CMYK").save(buf, format="JPEG")
    out["cmyk"] = buf.getvalue()
    return out


@pytest.mark.parametrize("variant", ["exif_rotated", "grayscale", "rgba", "small", "large", "cmyk"])
def test_photo_variants_make_a_figurine(astronaut, session_config, tmp_path, variant):
    data = _variants(astronaut)[variant]
    result = run(data, Options(), out_dir=tmp_path, config=session_config)
    assert result.face.count == 1
    assert abs(result.face.roll) < 15  # the EXIF turn was undone
    assert result.glb_path.exists() and result.stl_path.exists()


def test_progress_reaches_the_end_in_stage_order(astronaut, session_config, tmp_path):
    seen: list[tuple[float, str]] = []
    run(astronaut, Options(style="comic"), out_dir=tmp_path, config=session_config,
        progress=lambda f, s: seen.append((f, s)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    order = list(dict.fromkeys(s for _, s in seen))
    assert order == list(STAGES)


def test_timings_include_every_stage_and_sub_stage(astronaut, session_config, tmp_path):
    result = run(astronaut, Options(), out_dir=tmp_path, config=session_config)
    assert set(STAGES) | {"total"} <= set(result.timings_ms)
    assert any(k.startswith("landmarks.") for k in result.timings_ms)
    assert any(k.startswith("fusion.") for k in result.timings_ms)


@pytest.mark.parametrize(
    "options, error",
    [
        (Options(template="pirate"), errors.UnknownTemplateError),
        (Options(style="oil"), errors.UnknownStyleError),
        (Options(backend="quantum"), errors.UnknownBackendError),
        (Options(height_mm=5), errors.OptionError),
        (Options(height_mm=float("nan")), errors.OptionError),
        (Options(seed=-1), errors.OptionError),
    ],
)
def test_bad_options_fail_before_any_work(session_config, options, error):
    with pytest.raises(error):
        resolve_options(options, session_config)


def test_no_face_photo(no_face, session_config, tmp_path):
    with pytest.raises(errors.NoFaceError):
        run(no_face, Options(), out_dir=tmp_path, config=session_config)


def test_cpu_path_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, skimage.data, tempfile, pathlib\n"
        "from pipeline import run\n"
        "run(skimage.data.astronaut(), out_dir=pathlib.Path(tempfile.mkdtemp()))\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'\n"
        "assert 'gradio' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("template", ["default", "superhero", "casual"])
def test_another_person_with_a_turned_head(second_person, session_config, tmp_path, template):
    import trimesh

    result = run(second_person, Options(template=template), out_dir=tmp_path, config=session_config)
    assert result.face.count == 1
    assert abs(result.face.yaw) > 15  # he looks past the camera
    assert any("turned" in reason for reason in result.quality.reasons)
    stl = trimesh.load(result.stl_path)
    assert stl.is_watertight and stl.body_count == 1
    hair = trimesh.load(result.glb_path).geometry["hair"]
    assert max(hair.visual.material.baseColorFactor[:3]) < 40  # dark hair, in linear light


def test_failed_run_leaves_no_folder_behind(no_face, session_config):
    runs = session_config.data_dir
    before = set(runs.glob("run-*")) if runs.exists() else set()
    with pytest.raises(errors.NoFaceError):
        run(no_face, Options(), config=session_config)
    assert set(runs.glob("run-*")) == before


def test_no_photo_is_a_user_error(session_config):
    with pytest.raises(errors.NotAnImageError, match="No photo"):
        run(None, Options(), config=session_config)  # type: ignore[arg-type]


def test_a_pickled_result_leaves_the_pixels_on_disk(astronaut, session_config, tmp_path):
    """Worker processes pickle results to the server; the image travels as its file."""
    import pickle

    result = run(astronaut, Options(), out_dir=tmp_path, config=session_config)
    in_memory = result.stylized.copy()
    data = pickle.dumps(result)
    assert len(data) < in_memory.nbytes / 10
    again = pickle.loads(data)
    assert again.stl_path == result.stl_path and again.timings_ms == result.timings_ms
    assert np.array_equal(again.stylized, in_memory)  # PNG is lossless

"""tools/eval_avatar.py on a real photo and the app's own avatar of it, and on a cat."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
    # tools/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("eval_avatar", ROOT / "tools" / "eval_avatar.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


eval_avatar = _load_tool()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "tools/eval_avatar.py", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory, astronaut, session_config):
    """The astronaut photo on disk and the pipeline's own stylized.png and figurine.glb of it."""
    from pipeline import Options, run

    folder = tmp_path_factory.mktemp("eval")
    photo = folder / "photo.png"
    Image.fromarray(astronaut).save(photo)
    result = run(astronaut, Options(), out_dir=folder / "out", config=session_config)
    return photo, result


def test_avatar_of_the_astronaut_scores_as_a_likeness_and_a_cartoon(made, tmp_path):
    photo, result = made
    out = tmp_path / "eval.json"
    proc = _cli("--original", str(photo), "--avatar", str(result.stylized_path),
                "--figurine", str(result.glb_path), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "more cartoon-like than the photo" in proc.stdout

    report = json.loads(out.read_text())
    assert report["face_found"] is True and 0.5 <= report["face_confidence"] <= 1.0
    like = report["likeness"]
    assert like["landmark_nme"] < 0.15
    assert 0.0 < like["ssim_face"] <= 1.0
    assert 0.0 <= like["identity"]["similarity"] <= 1.0 and "LBPH" in like["identity"]["model"]
    cartoon = report["cartoon"]
    assert cartoon["avatar"]["palette_size"] < cartoon["photo"]["palette_size"]
    assert cartoon["avatar"]["flat_share"] > cartoon["photo"]["flat_share"]
    assert cartoon["more_cartoon_like_than_photo"] is True
    fig = report["figurine"]
    assert fig["watertight"] is True and fig["stl"]["manifold"] is True
    assert fig["glb"]["texture_present"] is True and fig["glb"]["triangles"] > 1000
    assert fig["glb"]["height_mm"] == pytest.approx(result.height_mm, rel=0.01)
    assert fig["stl"]["heights_agree"] is True


def test_a_cat_is_no_face_but_still_a_valid_report(made, tmp_path, no_face):
    photo, _ = made
    cat = tmp_path / "cat.png"
    Image.fromarray(no_face).save(cat)
    out = tmp_path / "eval.json"
    proc = _cli("--original", str(photo), "--avatar", str(cat), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["face_found"] is False and report["face_confidence"] is None
    assert report["face"]["avatar"]["reason"].startswith("no_face")
    assert report["likeness"]["landmark_nme"] is None and report["figurine"] is None
    assert report["cartoon"]["more_cartoon_like_than_photo"] is False


def test_unreadable_input_exits_2_with_one_line(made, tmp_path):
    photo, _ = made
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    proc = _cli("--original", str(photo), "--avatar", str(junk), "--output", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "junk.png" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_umeyama_recovers_a_similarity_and_the_error_ignores_it():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (478, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + shift
    matrix = eval_avatar.umeyama(src, dst)
    assert np.allclose(eval_avatar.apply_affine(matrix, src), dst, atol=1e-6)
    assert eval_avatar.landmark_error(dst, src) == pytest.approx(0.0, abs=1e-9)
    noisy = src + rng.normal(0, 1.0, src.shape)
    assert eval_avatar.landmark_error(src, noisy) > 0.0


def test_cartoon_measures_tell_flat_colour_from_texture():
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    flat = np.zeros((256, 256, 3), dtype=np.uint8)
    flat[:, 128:] = (200, 40, 40)
    m_tex, m_flat = eval_avatar.cartoon_measures(texture), eval_avatar.cartoon_measures(flat)
    assert m_flat["palette_size"] == 2 and m_tex["palette_size"] > 1000
    assert m_flat["flat_share"] > 0.95 > 0.05 > m_tex["flat_share"]
    assert eval_avatar.more_cartoon_like(m_flat, m_tex) and not eval_avatar.more_cartoon_like(m_tex, m_flat)


def test_lbph_similarity_is_one_for_the_same_crop():
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    assert eval_avatar.lbph_similarity(crop, crop)["similarity"] == pytest.approx(1.0)
    assert eval_avatar.lbph_similarity(crop, np.zeros_like(crop))["similarity"] < 0.5

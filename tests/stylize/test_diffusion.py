"""The SDXL stylizer, run offline on CPU against a tiny random SDXL saved to a temp folder."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.errors import BackendUnavailableError, UnknownStyleError
from pipeline.stylize import get_stylizer
from pipeline.stylize import differential, zero_gpu
from pipeline.stylize.differential import diffusion_size, face_mask
from pipeline.stylize.diffusion import DiffusionStylizer
from toonforge_testing.tiny_sdxl import synthetic_face, synthetic_photo

WIDTH, HEIGHT = 96, 80  # deliberately not multiples of 8 and not square
PHOTO = synthetic_photo(WIDTH, HEIGHT)
FACE = synthetic_face(WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def config(tiny_diffusion_env: dict[str, str]) -> Config:
    return Config.from_env(tiny_diffusion_env)


@pytest.fixture(scope="module")
def stylizer(config: Config) -> DiffusionStylizer:
    """Built through the registry, exactly as the runner does."""
    return get_stylizer("diffusion", config)


def _run(stylizer, seed: int = 0, style: str = "toon") -> np.ndarray:
    return stylizer.stylize(PHOTO, FACE, style, seed).image


def test_loads_from_env_and_returns_input_sized_uint8(monkeypatch, tiny_diffusion_env, stylizer):
    for key, value in tiny_diffusion_env.items():
        monkeypatch.setenv(key, value)
    assert Config.from_env().diffusion_model == tiny_diffusion_env["TOONFORGE_DIFFUSION_MODEL"]
    assert stylizer.availability().available
    result = stylizer.stylize(PHOTO, FACE, "comic", 3)
    assert result.image.shape == (HEIGHT, WIDTH, 3)
    assert result.image.dtype == np.uint8
    assert (result.backend, result.style) == ("diffusion", "comic")
    assert result.timings_ms["diffusion"] > 0
    assert {"toon", "comic"} <= set(stylizer.styles)


def test_same_seed_same_image_other_seed_other_image(stylizer):
    first = _run(stylizer, seed=7)
    assert np.array_equal(first, _run(stylizer, seed=7))
    assert np.abs(first.astype(int) - _run(stylizer, seed=8)).mean() > 1.0


def test_lora_changes_the_output(config, stylizer, tiny_lora_path):
    with_file = DiffusionStylizer(replace(config, diffusion_lora=str(tiny_lora_path)))
    with_dir = DiffusionStylizer(replace(config, diffusion_lora=str(tiny_lora_path.parent)))
    base, styled = _run(stylizer, seed=5), _run(with_file, seed=5)
    assert np.abs(base.astype(int) - styled).mean() > 1.0
    assert np.array_equal(styled, _run(with_dir, seed=5))  # a folder finds the same weights file
    weaker = DiffusionStylizer(
        replace(config, diffusion_lora=str(tiny_lora_path), diffusion_lora_scale=0.2)
    )
    assert (
        np.abs(base.astype(int) - _run(weaker, seed=5)).mean()
        < np.abs(base.astype(int) - styled).mean()
    )


def test_progress_reports_increasing_fractions(config):
    calls: list[tuple[float, str]] = []
    DiffusionStylizer(config).stylize(PHOTO, FACE, "toon", 1, lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(set(fractions)), calls  # strictly increasing
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    steps = [m for _, m in calls if m.startswith("diffusion step")]
    assert steps == ["diffusion step 1/3", "diffusion step 2/3", "diffusion step 3/3"]  # 4 * 0.75


def test_face_region_is_held_exactly_at_zero_face_strength(monkeypatch, config):
    """White-box check of the mechanism: with face strength 0 the final latents inside the face
    equal the photo's latents, for any seed, while the background is regenerated."""
    stylizer = DiffusionStylizer(replace(config, diffusion_face_strength=0.0, diffusion_size=128))
    stylizer.preload()
    captured: dict[str, object] = {}
    vae = stylizer._pipe.vae
    encode, decode = differential.encode_latents, vae.decode

    def spy_encode(*args, **kwargs):
        captured["init"] = encode(*args, **kwargs)
        return captured["init"]

    def spy_decode(latents, *args, **kwargs):
        captured["final"] = latents * vae.config.scaling_factor
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(differential, "encode_latents", spy_encode)
    vae.decode = spy_decode
    try:
        _run(stylizer, seed=11)
    finally:
        vae.decode = decode
    init, final = captured["init"].numpy()[0], captured["final"].numpy()[0]
    w, h = diffusion_size(WIDTH, HEIGHT, 128)
    mask = face_mask(FACE, w, h).reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    inside, outside = mask > 0.999, mask < 0.001
    assert inside.sum() >= 4 and outside.sum() >= 20
    # (up to the last 0.1 % of feathering that an 8x8 latent cell still averages in)
    np.testing.assert_allclose(final[:, inside], init[:, inside], atol=1e-3)
    assert np.abs(final[:, outside] - init[:, outside]).mean() > 0.05


def test_lower_face_strength_keeps_the_face_stable_across_seeds(config):
    """End to end: with face strength below strength, the face varies much less between seeds
    than with face strength == strength, while the background varies about the same."""
    mask = face_mask(FACE, WIDTH, HEIGHT)
    inside, outside = mask > 0.99, mask < 0.01

    def seed_spread(face_strength: float) -> tuple[float, float]:
        stylizer = DiffusionStylizer(replace(config, diffusion_face_strength=face_strength))
        images = np.stack([_run(stylizer, seed=s).astype(float) for s in range(3)])
        spread = images.std(axis=0).mean(axis=-1)
        return spread[inside].mean(), spread[outside].mean()

    held_face, held_bg = seed_spread(0.25)
    free_face, free_bg = seed_spread(0.75)
    assert held_face < 0.7 * free_face
    assert held_bg == pytest.approx(free_bg, rel=0.35)


def test_face_mask_covers_the_landmark_hull():
    mask = face_mask(FACE, WIDTH, HEIGHT)
    assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.float32
    cx, cy = int(WIDTH / 2), int(HEIGHT * 0.45)
    assert mask[cy, cx] > 0.99
    assert mask[2, 2] < 0.01 and mask[HEIGHT - 2, WIDTH - 2] < 0.01
    # scales with the working size: the same face at double resolution
    big = face_mask(FACE, WIDTH * 2, HEIGHT * 2)
    assert big[cy * 2, cx * 2] > 0.99


def test_fast_mode_uses_lcm(config):
    stylizer = DiffusionStylizer(replace(config, diffusion_fast=True, diffusion_fast_steps=4))
    image = _run(stylizer, seed=2)
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert type(stylizer._pipe.scheduler).__name__ == "LCMScheduler"
    assert stylizer._guidance() == Config().diffusion_fast_guidance


def test_unknown_style(stylizer):
    with pytest.raises(UnknownStyleError, match="toon"):
        stylizer.stylize(PHOTO, FACE, "watercolour-nope", 0)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("", "set TOONFORGE_DIFFUSION_MODEL"),
        ("/nonexistent/sdxl", "not an existing folder"),
        ("toonforge-tests/not-a-cached-model", "python -m pipeline.weights download"),
    ],
)
def test_missing_weights(monkeypatch, model, expected):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stylizer = DiffusionStylizer(Config(diffusion_model=model, device="cpu"))
    status = stylizer.availability()
    assert not status.available and expected in status.reason
    with pytest.raises(BackendUnavailableError, match=expected) as info:
        stylizer.stylize(PHOTO, FACE, "toon", 0)
    assert info.value.code == "backend_unavailable"


def test_folder_without_model_index(tmp_path):
    status = DiffusionStylizer(Config(diffusion_model=str(tmp_path))).availability()
    assert not status.available and "model_index.json" in status.reason


def test_broken_model_folder_raises_backend_unavailable(tmp_path, tiny_sdxl_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text((tiny_sdxl_dir / "model_index.json").read_text())
    stylizer = DiffusionStylizer(Config(diffusion_model=str(broken), device="cpu"))
    assert stylizer.availability().available  # cheap check only looks for model_index.json
    with pytest.raises(BackendUnavailableError, match="Could not load the SDXL model"):
        stylizer.stylize(PHOTO, FACE, "toon", 0)


def test_missing_lora_is_reported(config, tmp_path):
    status = DiffusionStylizer(
        replace(config, diffusion_lora=str(tmp_path / "nope.safetensors"))
    ).availability()
    assert not status.available and "TOONFORGE_DIFFUSION_LORA" in status.reason


def test_bad_settings_are_reported(config):
    status = DiffusionStylizer(replace(config, diffusion_strength=1.5)).availability()
    assert not status.available and "TOONFORGE_DIFFUSION_STRENGTH" in status.reason
    status = DiffusionStylizer(
        replace(config, diffusion_steps=1, diffusion_strength=0.5)
    ).availability()
    assert not status.available and "no denoising step" in status.reason


def test_import_does_not_import_torch():
    code = (
        "import sys, json\n"
        "import pipeline.stylize.diffusion as d\n"
        "from pipeline.config import Config\n"
        "s = d.DiffusionStylizer(Config())\n"
        "s.availability()\n"
        "heavy = ('torch', 'diffusers', 'transformers')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_zero_gpu_preloads_and_runs_through_spaces_gpu(monkeypatch, config, tiny_diffusion_env):
    """On ZeroGPU the model is loaded at construction (before the app launches) and the
    denoising goes through spaces.GPU; progress stays in the main process."""
    import importlib.machinery
    import types

    calls: list[str] = []

    def gpu(duration):
        def wrap(fn):
            def run(*args):
                calls.append(fn.__name__)
                return fn(*args)

            return run

        calls.append(f"GPU(duration={duration})")
        return wrap

    fake = types.ModuleType("spaces")
    fake.__spec__ = importlib.machinery.ModuleSpec("spaces", None)
    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(zero_gpu, "_gpu_entry", None)
    zero_gpu_config = Config.from_env({**tiny_diffusion_env, "SPACES_ZERO_GPU": "true"})
    assert zero_gpu_config.zero_gpu

    stylizer = DiffusionStylizer(replace(zero_gpu_config, diffusion_gpu_duration=42))
    assert stylizer._pipe is not None  # preloaded in __init__
    progress: list[float] = []
    image = stylizer.stylize(PHOTO, FACE, "toon", 4, lambda f, m: progress.append(f)).image
    assert calls == ["GPU(duration=42)", "_gpu_generate"]
    assert progress == [1.0]
    assert not config.zero_gpu
    assert np.array_equal(image, _run(DiffusionStylizer(config), seed=4))


def test_zero_gpu_without_the_spaces_package_is_unavailable(monkeypatch, config):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError; find_spec too
    assert not zero_gpu.spaces_installed()
    status = DiffusionStylizer(replace(config, zero_gpu=True)).availability()
    assert not status.available and "add `spaces`" in status.reason
    assert DiffusionStylizer(config).availability().available


def test_weights_cli(monkeypatch, capsys, tiny_sdxl_dir, tiny_lora_path):
    from pipeline import weights

    for key in (
        "TOONFORGE_DIFFUSION_MODEL",
        "TOONFORGE_DIFFUSION_LORA",
        "TOONFORGE_DIFFUSION_FAST_LORA",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.main(["download"]) == 2
    assert "TOONFORGE_DIFFUSION_MODEL" in capsys.readouterr().err
    assert weights.main(["status"]) == 1

    monkeypatch.setenv("TOONFORGE_DIFFUSION_MODEL", str(tiny_sdxl_dir))
    monkeypatch.setenv("TOONFORGE_DIFFUSION_LORA", str(tiny_lora_path))
    assert weights.main(["status"]) == 0
    assert "available" in capsys.readouterr().out
    assert weights.main(["download"]) == 0  # local files: validated, nothing fetched
    assert str(tiny_lora_path) in capsys.readouterr().out

    assert weights.main(["download", "--model", "toonforge-tests/not-a-cached-model"]) == 2
    assert "Could not download" in capsys.readouterr().err

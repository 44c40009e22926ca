"""Shared fixtures. Inputs are built in code from scikit-image's bundled astronaut portrait
(NASA, public domain), so the tests need no download."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from pipeline.config import Config  # noqa: E402
from toonforge_testing.tiny_sdxl import save_tiny_lora, save_tiny_sdxl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512 x 512 RGB portrait with one face."""
    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """Tight head-and-shoulders crop of the astronaut, 400 x 480: a selfie-like framing."""
    img = Image.fromarray(skimage.data.astronaut()).crop((130, 10, 330, 250))
    return np.asarray(img.resize((400, 480), Image.Resampling.LANCZOS))


@pytest.fixture(scope="session")
def second_person() -> np.ndarray:
    """Another real person: mahotas' wheel ships a portrait of its author (head turned,
    dark hair, outdoor light). Read from the package's data folder; mahotas is not imported."""
    import importlib.util

    spec = importlib.util.find_spec("mahotas")
    assert spec and spec.origin, "mahotas (a test dependency) is not installed"
    path = Path(spec.origin).parent / "demos" / "data" / "luispedro.jpg"
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def no_face() -> np.ndarray:
    """A cat: a real photo with no human face."""
    return skimage.data.chelsea()


def encode(array: np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **params)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut: np.ndarray) -> bytes:
    return encode(astronaut, "JPEG", quality=92)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return replace(Config(), data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def session_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return replace(Config(), data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def astronaut_face(astronaut: np.ndarray, session_config: Config):
    from pipeline.landmarks import detect_landmarks

    return detect_landmarks(astronaut, session_config)


# --------------------------------------------------------------------------- tiny SDXL
# For every test that runs the diffusion backend offline.


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny SDXL diffusers folder (set TOONFORGE_DIFFUSION_MODEL to it)."""
    import torch

    # The tiny model's kernels take microseconds: extra threads only add OpenMP spin-waiting,
    # which made these tests ~3x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    return save_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl") / "model")


@pytest.fixture(scope="session")
def tiny_lora_path(tiny_sdxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA .safetensors file for :func:`tiny_sdxl_dir` (set TOONFORGE_DIFFUSION_LORA to it)."""
    return save_tiny_lora(tiny_sdxl_dir, tmp_path_factory.mktemp("tiny_lora"))


@pytest.fixture(scope="session")
def tiny_diffusion_env(tiny_sdxl_dir: Path) -> dict[str, str]:
    """Environment that makes the diffusion backend run the tiny model fast on CPU."""
    return {
        "TOONFORGE_DIFFUSION_MODEL": str(tiny_sdxl_dir),
        "TOONFORGE_DIFFUSION_STEPS": "4",
        "TOONFORGE_DIFFUSION_STRENGTH": "0.75",
        "TOONFORGE_DIFFUSION_FACE_STRENGTH": "0.25",
        "TOONFORGE_DIFFUSION_SIZE": "64",
        "TOONFORGE_DEVICE": "cpu",
    }

"""Frozen configuration, read from the environment in exactly one place.

Besides ``TOONFORGE_*``, it reads what a host sets: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
(where to listen) and, on Hugging Face Spaces, ``SYSTEM=spaces``, ``SPACE_ID`` and
``SPACES_ZERO_GPU``; there results go to the persistent ``/data`` volume when the Space has one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

SPACES_VOLUME = Path("/data")  # a Space's persistent storage, when it has some
SPACES_LISTEN_HOST = "0.0.0.0"  # the Spaces proxy reaches the app from outside its container


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _spaces_data_dir(on_spaces: bool, volume: Path) -> Path | None:
    """Results on a Space's persistent volume, if it has one we can write (TTL and cap apply)."""
    if on_spaces and volume.is_dir() and os.access(volume, os.W_OK):
        return volume / "toonforge"
    return None


@dataclass(frozen=True)
class Config:
    """Every tunable of Toonforge. Build with :meth:`from_env`; never mutate."""

    # validate
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 128
    max_aspect: float = 4.0
    working_max_side: int = 1024
    # landmarks
    min_face_px: int = 48
    max_faces: int = 5
    # export
    default_height_mm: float = 100.0
    min_height_mm: float = 20.0
    max_height_mm: float = 400.0
    # backends
    default_backend: str = "cpu"
    diffusion_model: str = ""
    diffusion_lora: str = ""
    diffusion_lora_scale: float = 0.8
    diffusion_steps: int = 30
    diffusion_strength: float = 0.55
    diffusion_face_strength: float = 0.3
    diffusion_guidance: float = 6.0
    diffusion_fast: bool = False
    diffusion_size: int = 1024
    diffusion_variant: str = ""  # weights file variant, e.g. "fp16" (half the download)
    diffusion_fast_lora: str = ""  # LCM-LoRA loaded in fast mode, e.g. latent-consistency/lcm-lora-sdxl
    diffusion_fast_steps: int = 6
    diffusion_fast_guidance: float = 1.0  # <= 1 disables classifier-free guidance
    diffusion_gpu_duration: int = 60  # seconds requested per call on ZeroGPU
    device: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    # service
    data_dir: Path = Path(tempfile.gettempdir()) / "toonforge"
    result_ttl_s: int = 3600
    max_disk_bytes: int = 2 * 1024 * 1024 * 1024
    workers: int = max(1, min(4, os.cpu_count() or 1))
    queue_size: int = 32
    # Each worker thread hands cpu-backend jobs to its own child process (see service/worker.py).
    worker_processes: bool = True
    # hosting: where `python app.py` listens unless --host/--port say otherwise
    server_name: str = "127.0.0.1"  # loopback: a laptop does not expose the app
    server_port: int = 7860
    on_spaces: bool = False  # SYSTEM=spaces: behind the Hugging Face Spaces proxy
    space_id: str = ""  # "owner/name" on Spaces
    zero_gpu: bool = False  # SPACES_ZERO_GPU: GPUs are lent per call through the spaces package

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, spaces_volume: Path = SPACES_VOLUME
    ) -> "Config":
        """Read the environment (``env``, default ``os.environ``); ``spaces_volume`` is where
        a Space's persistent storage would be mounted."""
        env = os.environ if env is None else env
        d = cls()
        on_spaces = env.get("SYSTEM", "") == "spaces"
        return cls(
            max_upload_bytes=_int(env, "TOONFORGE_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            max_pixels=_int(env, "TOONFORGE_MAX_PIXELS", d.max_pixels),
            min_side=_int(env, "TOONFORGE_MIN_SIDE", d.min_side),
            max_aspect=_float(env, "TOONFORGE_MAX_ASPECT", d.max_aspect),
            working_max_side=_int(env, "TOONFORGE_WORKING_MAX_SIDE", d.working_max_side),
            min_face_px=_int(env, "TOONFORGE_MIN_FACE_PX", d.min_face_px),
            max_faces=_int(env, "TOONFORGE_MAX_FACES", d.max_faces),
            default_height_mm=_float(env, "TOONFORGE_HEIGHT_MM", d.default_height_mm),
            default_backend=env.get("TOONFORGE_BACKEND", d.default_backend) or d.default_backend,
            diffusion_model=env.get("TOONFORGE_DIFFUSION_MODEL", d.diffusion_model),
            diffusion_lora=env.get("TOONFORGE_DIFFUSION_LORA", d.diffusion_lora),
            diffusion_lora_scale=_float(env, "TOONFORGE_DIFFUSION_LORA_SCALE", d.diffusion_lora_scale),
            diffusion_steps=_int(env, "TOONFORGE_DIFFUSION_STEPS", d.diffusion_steps),
            diffusion_strength=_float(env, "TOONFORGE_DIFFUSION_STRENGTH", d.diffusion_strength),
            diffusion_face_strength=_float(
                env, "TOONFORGE_DIFFUSION_FACE_STRENGTH", d.diffusion_face_strength
            ),
            diffusion_guidance=_float(env, "TOONFORGE_DIFFUSION_GUIDANCE", d.diffusion_guidance),
            diffusion_fast=_bool(env, "TOONFORGE_DIFFUSION_FAST", d.diffusion_fast),
            diffusion_size=_int(env, "TOONFORGE_DIFFUSION_SIZE", d.diffusion_size),
            diffusion_variant=env.get("TOONFORGE_DIFFUSION_VARIANT", d.diffusion_variant),
            diffusion_fast_lora=env.get("TOONFORGE_DIFFUSION_FAST_LORA", d.diffusion_fast_lora),
            diffusion_fast_steps=_int(env, "TOONFORGE_DIFFUSION_FAST_STEPS", d.diffusion_fast_steps),
            diffusion_fast_guidance=_float(
                env, "TOONFORGE_DIFFUSION_FAST_GUIDANCE", d.diffusion_fast_guidance
            ),
            diffusion_gpu_duration=_int(
                env, "TOONFORGE_DIFFUSION_GPU_DURATION", d.diffusion_gpu_duration
            ),
            device=env.get("TOONFORGE_DEVICE", d.device) or d.device,
            cpu_offload=_bool(env, "TOONFORGE_CPU_OFFLOAD", d.cpu_offload),
            vae_tiling=_bool(env, "TOONFORGE_VAE_TILING", d.vae_tiling),
            data_dir=Path(
                env.get("TOONFORGE_DATA_DIR") or _spaces_data_dir(on_spaces, spaces_volume) or d.data_dir
            ),
            result_ttl_s=_int(env, "TOONFORGE_RESULT_TTL_S", d.result_ttl_s),
            max_disk_bytes=_int(env, "TOONFORGE_MAX_DISK_BYTES", d.max_disk_bytes),
            workers=_int(env, "TOONFORGE_WORKERS", d.workers),
            queue_size=_int(env, "TOONFORGE_QUEUE_SIZE", d.queue_size),
            worker_processes=_bool(env, "TOONFORGE_WORKER_PROCESSES", d.worker_processes),
            server_name=env.get("GRADIO_SERVER_NAME")
            or (SPACES_LISTEN_HOST if on_spaces else d.server_name),
            server_port=_int(env, "GRADIO_SERVER_PORT", d.server_port),
            on_spaces=on_spaces,
            space_id=env.get("SPACE_ID", "") if on_spaces else "",
            zero_gpu=_bool(env, "SPACES_ZERO_GPU", d.zero_gpu),
        )

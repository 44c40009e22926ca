"""SDXL img2img stylizer (GPU recommended; runs, slowly, on CPU).

Identity preservation: per-pixel denoising strength in a single pass ("differential img2img").
The face (convex hull of the 478 landmarks, feathered) is denoised with
``diffusion_face_strength`` and the rest of the picture with ``diffusion_strength``. The
pipeline runs at the larger of the two; after every scheduler step, latents of pixels that
should not be touched yet are pulled back to the original image's latents, re-noised with the
same noise to the level of the next step (as in SD's mask-guided inpainting). So the face enters
the denoising loop later, i.e. with less noise, and keeps the photo's geometry, while the model
still sees the whole image at every step, so face and background are stylised coherently, with
no seam and at the cost of one run (a two-pass "generate then paste a weaker face" blend would
double the cost and leave a visible border). A soft mask gives a soft transition.

Fast mode (``diffusion_fast``): LCMScheduler, ``diffusion_fast_steps`` steps and
``diffusion_fast_guidance`` (<= 1 turns classifier-free guidance off, halving UNet work). It
needs an LCM-distilled model or the LCM-LoRA (``diffusion_fast_lora``, e.g.
``latent-consistency/lcm-lora-sdxl``), loaded next to the style LoRA.

torch and diffusers are imported only inside functions: importing this module, building a
:class:`DiffusionStylizer` and :meth:`~DiffusionStylizer.availability` stay cheap, so the
CPU-only install never pays for them.

On Hugging Face ZeroGPU (``SPACES_ZERO_GPU`` set and the ``spaces`` package installed) the model
is loaded and moved to ``cuda`` when the stylizer is built, which must happen before the Gradio
app launches, and only the denoising runs inside a ``spaces.GPU`` function.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import BackendUnavailableError
from pipeline.stylize.base import Availability, ProgressFn, StylizeResult

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.landmarks import FaceAnalysis

log = logging.getLogger(__name__)

_NEGATIVE = (
    "photo, photorealistic, realistic skin texture, deformed face, disfigured, asymmetric eyes, "
    "extra limbs, blurry, lowres, jpeg artifacts, text, watermark, signature"
)

# style -> (prompt, negative prompt). "toon" and "comic" mirror the CPU backend's styles.
STYLE_PROMPTS: dict[str, tuple[str, str]] = {
    "toon": (
        "3d cartoon portrait of the same person, animated movie character, smooth soft shading, "
        "big expressive eyes, clean simple background, vibrant colors, high quality",
        _NEGATIVE,
    ),
    "comic": (
        "comic book portrait of the same person, bold black ink outlines, cel shading, halftone "
        "dots, flat vivid colors, graphic novel art",
        _NEGATIVE + ", 3d render",
    ),
    "anime": (
        "anime portrait of the same person, clean line art, cel shaded, bright eyes, studio "
        "anime key visual, detailed hair",
        _NEGATIVE + ", 3d render",
    ),
    "clay": (
        "claymation figurine portrait of the same person, plasticine, handmade stop-motion "
        "puppet, soft studio lighting, miniature",
        _NEGATIVE,
    ),
}

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
DOWNLOAD_HINT = "run `python -m pipeline.weights download`"

_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


# --------------------------------------------------------------------------- weight sources


def describe_error(exc: BaseException) -> str:
    """An exception as a clause inside our own sentence."""
    return (str(exc).strip().rstrip(".") or type(exc).__name__).replace("\n", " ")


def _hf_offline() -> bool:
    # Read the environment at call time: huggingface_hub caches its constant at import.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def split_hub_ref(ref: str, allow_file: bool = False) -> tuple[str, str] | None:
    """``(repo_id, filename)`` if ``ref`` reads as a Hub reference (``owner/name`` or, with
    ``allow_file``, ``owner/name/path/file.safetensors``), else None."""
    if os.path.isabs(ref) or ref.startswith((".", "~")) or "\\" in ref:
        return None
    parts = ref.split("/")
    if len(parts) < 2 or not all(_HUB_PART.fullmatch(p) for p in parts[:2]):
        return None
    if len(parts) == 2:
        return ref, ""
    if allow_file and ref.endswith(".safetensors") and all(parts[2:]):
        return "/".join(parts[:2]), "/".join(parts[2:])
    return None


def cached_snapshot(repo_id: str) -> Path | None:
    """The locally cached snapshot folder of a Hub repo, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):  # not cached / not a valid repo id
        return None


def _has_unet_weights(folder: Path) -> bool:
    return any((folder / "unet").glob("diffusion_pytorch_model*.safetensors"))


def _lora_file_in(folder: Path) -> Path | None:
    """The LoRA weights file of a folder: diffusers' default name, else its only .safetensors."""
    if (folder / LORA_WEIGHT_NAME).is_file():
        return folder / LORA_WEIGHT_NAME
    files = sorted(folder.glob("*.safetensors"))
    return files[0] if len(files) == 1 else None


@dataclass(frozen=True)
class ModelSource:
    """Where the SDXL weights come from and whether they can be loaded right now."""

    ref: str
    local_dir: Path | None  # a local diffusers folder, or the cached Hub snapshot
    repo_id: str  # empty for a local folder
    problem: str  # empty when loadable
    note: str = ""  # e.g. "will be downloaded on first use"


def check_model(ref: str) -> ModelSource:
    """Classify TOONFORGE_DIFFUSION_MODEL without loading anything or using the network."""
    if not ref:
        return ModelSource(
            ref,
            None,
            "",
            "The diffusion backend has no model: set TOONFORGE_DIFFUSION_MODEL to a local SDXL "
            "diffusers folder or a Hub id (e.g. stabilityai/stable-diffusion-xl-base-1.0), "
            f"then {DOWNLOAD_HINT}.",
        )
    local = Path(ref).expanduser()
    hub = None if local.exists() else split_hub_ref(ref)
    if hub is None:
        if local.is_file():
            return ModelSource(
                ref,
                None,
                "",
                f"TOONFORGE_DIFFUSION_MODEL={ref!r} is a single file; the backend needs a "
                "diffusers folder. Convert it once with StableDiffusionXLImg2ImgPipeline"
                ".from_single_file(...).save_pretrained(folder) and point "
                "TOONFORGE_DIFFUSION_MODEL at that folder.",
            )
        if not local.is_dir():
            return ModelSource(
                ref,
                None,
                "",
                f"TOONFORGE_DIFFUSION_MODEL={ref!r} is not an existing folder. Point it at a "
                "local SDXL diffusers folder (one with model_index.json) or a Hub id.",
            )
        if not (local / "model_index.json").is_file():
            return ModelSource(
                ref,
                None,
                "",
                f"{ref!r} has no model_index.json, so it is not a diffusers pipeline folder. "
                "Convert single-file checkpoints with diffusers first, or use a Hub id.",
            )
        return ModelSource(ref, local, "", "")
    repo_id = hub[0]
    snapshot = cached_snapshot(repo_id)
    if (
        snapshot is not None
        and (snapshot / "model_index.json").is_file()
        and _has_unet_weights(snapshot)
    ):
        return ModelSource(ref, snapshot, repo_id, "")
    if _hf_offline():
        return ModelSource(
            ref,
            None,
            repo_id,
            f"The SDXL weights {repo_id!r} are not in the local Hugging Face cache and "
            f"HF_HUB_OFFLINE is set: {DOWNLOAD_HINT} on a machine with network access "
            "(or unset HF_HUB_OFFLINE), or point TOONFORGE_DIFFUSION_MODEL at a local folder.",
        )
    return ModelSource(
        ref,
        None,
        repo_id,
        "",
        note=f"{repo_id} is not cached yet and will be downloaded on first use (several GB); "
        f"{DOWNLOAD_HINT} to fetch it ahead of time.",
    )


def check_lora(ref: str, env_name: str = "TOONFORGE_DIFFUSION_LORA") -> tuple[Path | None, str]:
    """``(local .safetensors file or None, problem)`` for a LoRA given as file, folder or Hub
    reference. ``(None, "")`` means "Hub reference, not cached, may be downloaded"."""
    local = Path(ref).expanduser()
    if local.is_file():
        return local, ""
    if local.is_dir():
        found = _lora_file_in(local)
        if found is None:
            return None, (
                f"{env_name}={ref!r} is a folder without {LORA_WEIGHT_NAME} or a single "
                ".safetensors file; point it at the weights file itself."
            )
        return found, ""
    hub = split_hub_ref(ref, allow_file=True)
    if hub is None:
        return (
            None,
            f"{env_name}={ref!r} does not exist. Use a .safetensors file, a folder or a Hub id.",
        )
    repo_id, filename = hub
    snapshot = cached_snapshot(repo_id)
    if snapshot is not None:
        found = snapshot / filename if filename else _lora_file_in(snapshot)
        if found is not None and found.is_file():
            return found, ""
    if _hf_offline():
        return None, (
            f"The LoRA {ref!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"{DOWNLOAD_HINT} first, or set {env_name} to a local .safetensors file."
        )
    return None, ""


def fetch_lora(ref: str, env_name: str = "TOONFORGE_DIFFUSION_LORA") -> Path:
    """The local LoRA file for ``ref``, downloading it into the HF cache if needed."""
    from huggingface_hub import hf_hub_download, snapshot_download

    path, problem = check_lora(ref, env_name)
    if problem:
        raise BackendUnavailableError(problem)
    if path is not None:
        return path
    repo_id, filename = split_hub_ref(ref, allow_file=True) or ("", "")
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename))
        snapshot = Path(snapshot_download(repo_id, allow_patterns=["*.safetensors", "*.json"]))
    except OSError as exc:  # huggingface_hub's HTTP and cache errors are OSErrors
        raise BackendUnavailableError(
            f"Could not download the LoRA {ref!r}: {describe_error(exc)}. Check the name and "
            f"the network, or set {env_name} to a local .safetensors file."
        ) from exc
    found = _lora_file_in(snapshot)
    if found is None:
        raise BackendUnavailableError(
            f"The Hub repo {repo_id!r} has no {LORA_WEIGHT_NAME} and more than one .safetensors "
            f"file; set {env_name}={repo_id}/<file>.safetensors."
        )
    return found


# --------------------------------------------------------------------------- geometry


def diffusion_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the long side at ``long_side`` and both sides multiples of 8 (VAE stride)."""
    scale = long_side / max(width, height)
    return (
        max(8, int(round(width * scale / 8)) * 8),
        max(8, int(round(height * scale / 8)) * 8),
    )


def face_mask(face: "FaceAnalysis", width: int, height: int) -> np.ndarray:
    """Feathered face region (H x W float32 in [0, 1]) at ``width`` x ``height``: the convex hull
    of the landmarks, blurred by ~6 % of the face width so the strength changes smoothly."""
    import cv2

    fw, fh = face.image_size
    sx, sy = width / fw, height / fh
    mask = np.zeros((height, width), np.float32)
    points = np.asarray(face.landmarks_px, dtype=np.float32)[:, :2] * np.float32([sx, sy])
    if len(points) >= 3 and np.isfinite(points).all():
        hull = cv2.convexHull(points).round().astype(np.int32)
        cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA)
    else:  # no usable landmarks: fall back to the ellipse inscribed in the face box
        x0, y0, x1, y1 = face.bbox
        center = (int(round((x0 + x1) / 2 * sx)), int(round((y0 + y1) / 2 * sy)))
        axes = (max(1, int(round((x1 - x0) / 2 * sx))), max(1, int(round((y1 - y0) / 2 * sy))))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    sigma = max(1.0, 0.06 * (face.bbox[2] - face.bbox[0]) * sx)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


# --------------------------------------------------------------------------- the stylizer


@dataclass(frozen=True)
class _Job:
    """One denoising request; plain data so that it can cross into a ZeroGPU worker."""

    image: np.ndarray  # h x w x 3 uint8 at diffusion resolution
    face_mask: np.ndarray  # h x w float32 in [0, 1]
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    strength: float
    face_strength: float


def _on_zero_gpu() -> bool:
    return (
        os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in {"1", "t", "true"}
        and importlib.util.find_spec("spaces") is not None
    )


# ZeroGPU runs the decorated function in a forked worker and pickles its arguments, so the
# GPU entry point is a module-level function that finds its (already loaded, inherited)
# stylizer by key instead of receiving it.
_GPU_STYLIZERS: dict[int, "DiffusionStylizer"] = {}
_gpu_entry: Any = None


def _gpu_generate(key: int, job: _Job) -> np.ndarray:
    return _GPU_STYLIZERS[key]._generate(job, None)


class DiffusionStylizer:
    """Stable Diffusion XL img2img with optional LoRA, fast (LCM) mode and face preservation."""

    name = "diffusion"
    styles = tuple(STYLE_PROMPTS)

    def __init__(self, config: "Config", pipeline: Any = None) -> None:
        """``pipeline``: an already built ``StableDiffusionXLImg2ImgPipeline`` to use instead of
        loading ``config.diffusion_model`` (benchmarks); it is configured (scheduler, LoRA,
        device) like a loaded one on first use."""
        self.config = config
        self._lock = threading.Lock()  # guards loading and the (stateful) scheduler
        self._given = pipeline
        self._pipe: Any = None
        self._zero_gpu = _on_zero_gpu()
        self._run = self._generate
        if self._zero_gpu:
            self._setup_zero_gpu()

    # ----- cheap checks

    def availability(self) -> Availability:
        cfg = self.config
        missing = [
            m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None
        ]
        if cfg.diffusion_lora or (cfg.diffusion_fast and cfg.diffusion_fast_lora):
            missing += [m for m in ("peft",) if importlib.util.find_spec(m) is None]
        if cfg.cpu_offload and importlib.util.find_spec("accelerate") is None:
            missing.append("accelerate")
        if missing:
            return Availability(
                False,
                f"The diffusion backend needs {', '.join(missing)}: "
                "pip install -r requirements.txt (or use the cpu backend).",
            )
        problem = self._settings_problem()
        if problem:
            return Availability(False, problem)
        if self._given is not None or self._pipe is not None:
            return Availability(True)
        source = check_model(cfg.diffusion_model)
        if source.problem:
            return Availability(False, source.problem)
        notes = [source.note] if source.note else []
        for ref, env_name, _, _ in self._lora_refs():
            path, problem = check_lora(ref, env_name)
            if problem:
                return Availability(False, problem)
            if path is None:
                notes.append(f"The LoRA {ref} will be downloaded on first use.")
        return Availability(True, " ".join(notes))

    def _settings_problem(self) -> str:
        cfg = self.config
        steps = self._steps()
        for key, value in (
            ("TOONFORGE_DIFFUSION_STRENGTH", cfg.diffusion_strength),
            ("TOONFORGE_DIFFUSION_FACE_STRENGTH", cfg.diffusion_face_strength),
        ):
            if not 0.0 <= value <= 1.0:
                return f"{key} must be between 0 and 1, got {value}."
        if steps < 1 or int(steps * max(cfg.diffusion_strength, cfg.diffusion_face_strength)) < 1:
            return (
                f"With {steps} steps and strength {cfg.diffusion_strength} no denoising step would "
                "run: raise TOONFORGE_DIFFUSION_STEPS (or _FAST_STEPS) or the strength."
            )
        if cfg.diffusion_size < 64:
            return f"TOONFORGE_DIFFUSION_SIZE must be at least 64, got {cfg.diffusion_size}."
        return ""

    def _lora_refs(self) -> list[tuple[str, str, str, float]]:
        """(reference, env var, adapter name, weight) of every LoRA to load."""
        cfg = self.config
        refs = []
        if cfg.diffusion_lora:
            refs.append(
                (
                    cfg.diffusion_lora,
                    "TOONFORGE_DIFFUSION_LORA",
                    "toonforge_style",
                    cfg.diffusion_lora_scale,
                )
            )
        if cfg.diffusion_fast and cfg.diffusion_fast_lora:
            refs.append(
                (cfg.diffusion_fast_lora, "TOONFORGE_DIFFUSION_FAST_LORA", "toonforge_fast", 1.0)
            )
        return refs

    def _steps(self) -> int:
        return (
            self.config.diffusion_fast_steps
            if self.config.diffusion_fast
            else self.config.diffusion_steps
        )

    def _guidance(self) -> float:
        return (
            self.config.diffusion_fast_guidance
            if self.config.diffusion_fast
            else self.config.diffusion_guidance
        )

    # ----- loading

    def preload(self) -> None:
        """Load the model now instead of on the first :meth:`stylize` (raises if it cannot)."""
        with self._lock:
            self._ensure_loaded(None)

    def _ensure_loaded(self, progress: ProgressFn | None) -> bool:
        """Load once (caller holds the lock); True if this call did the loading."""
        if self._pipe is not None:
            return False
        status = self.availability()
        if not status.available:
            raise BackendUnavailableError(status.reason)
        if progress is not None:
            progress(0.0, "loading the diffusion model (first run only)")
        self._pipe = self._configure(
            self._given if self._given is not None else self._from_pretrained()
        )
        return True

    def _device_and_dtype(self) -> tuple[str, Any]:
        import torch

        requested = (self.config.device or "auto").strip().lower()
        if requested == "auto":
            if torch.cuda.is_available():
                device = "cuda"
            elif torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        else:
            device = requested
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"TOONFORGE_DEVICE={self.config.device} but torch sees no CUDA GPU. Install a CUDA "
                "build of torch, or set TOONFORGE_DEVICE=auto (or cpu: slow)."
            )
        # fp16 halves memory and time on GPUs; CPU kernels want fp32.
        return device, torch.float16 if device.startswith("cuda") else torch.float32

    def _from_pretrained(self) -> Any:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        source = check_model(self.config.diffusion_model)
        _, dtype = self._device_and_dtype()
        where = str(source.local_dir) if source.local_dir is not None else source.repo_id
        log.info("loading SDXL from %s", where)
        try:
            return StableDiffusionXLImg2ImgPipeline.from_pretrained(
                where,
                dtype=dtype,
                variant=self.config.diffusion_variant or None,
                use_safetensors=True,  # never unpickle downloaded weights
                local_files_only=source.local_dir is not None or _hf_offline(),
            )
        except (
            OSError,
            ValueError,
        ) as exc:  # missing/corrupt files, wrong pipeline type, no network
            raise BackendUnavailableError(
                f"Could not load the SDXL model {self.config.diffusion_model!r}: "
                f"{describe_error(exc)}. Check TOONFORGE_DIFFUSION_MODEL (a local SDXL diffusers "
                f"folder or a Hub id) and TOONFORGE_DIFFUSION_VARIANT, or {DOWNLOAD_HINT}."
            ) from exc

    def _configure(self, pipe: Any) -> Any:
        """Scheduler, LoRAs, device placement and memory options."""
        from diffusers import LCMScheduler

        cfg = self.config
        device, _ = self._device_and_dtype()
        pipe.set_progress_bar_config(disable=True)
        if cfg.diffusion_fast:
            pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
            if not cfg.diffusion_fast_lora:
                log.warning(
                    "fast mode without TOONFORGE_DIFFUSION_FAST_LORA: the LCM scheduler only gives "
                    "clean images with an LCM-distilled model"
                )

        names, weights = [], []
        for ref, env_name, name, scale in self._lora_refs():
            path = fetch_lora(ref, env_name)
            try:
                pipe.load_lora_weights(str(path), adapter_name=name)
            except (
                OSError,
                ValueError,
                KeyError,
                RuntimeError,
            ) as exc:  # bad file / wrong base model
                raise BackendUnavailableError(
                    f"Could not load the LoRA {ref!r} ({env_name}): {describe_error(exc)}. "
                    "It must be an SDXL LoRA in diffusers, kohya or peft format."
                ) from exc
            names.append(name)
            weights.append(scale)
        if names:
            pipe.set_adapters(names, adapter_weights=weights)

        if cfg.cpu_offload and device.startswith("cuda") and not self._zero_gpu:
            # Keeps only the active sub-model on the GPU: ~6 GB instead of ~10 GB for SDXL fp16.
            pipe.enable_model_cpu_offload(device=device)
        else:
            if cfg.cpu_offload:
                log.warning(
                    "TOONFORGE_CPU_OFFLOAD ignored on %s", "ZeroGPU" if self._zero_gpu else device
                )
            pipe.to(device)  # dtype was chosen at load time (or by whoever built `pipeline`)
        if cfg.vae_tiling:
            pipe.vae.enable_tiling()
        return pipe

    def _setup_zero_gpu(self) -> None:
        """Register the spaces.GPU entry point and load onto "cuda" now, before the app starts:
        ZeroGPU snapshots CUDA tensors at startup, and a model loaded inside the GPU function
        would be reloaded on every call."""
        global _gpu_entry
        import spaces  # must be imported before torch initialises CUDA

        if _gpu_entry is None:
            _gpu_entry = spaces.GPU(duration=self.config.diffusion_gpu_duration)(_gpu_generate)
        key = id(self)
        _GPU_STYLIZERS[key] = self
        self._run = lambda job, progress: _gpu_entry(key, job)
        try:
            self.preload()
        except BackendUnavailableError as exc:
            # Keep the app up (the cpu backend still works); stylize() raises this again.
            log.error("diffusion backend not preloaded on ZeroGPU: %s", exc.detail)

    # ----- running

    def stylize(
        self,
        image: np.ndarray,
        face: "FaceAnalysis",
        style: str,
        seed: int,
        progress: ProgressFn | None = None,
    ) -> StylizeResult:
        from pipeline.stylize import check_style  # the package imports this module lazily

        check_style(self, style)
        from PIL import Image

        height, width = image.shape[:2]
        w, h = diffusion_size(width, height, self.config.diffusion_size)
        small = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))
        prompt, negative = STYLE_PROMPTS[style]
        job = _Job(
            image=small,
            face_mask=face_mask(face, w, h),
            prompt=prompt,
            negative_prompt=negative,
            seed=int(seed) % (2**63),
            steps=self._steps(),
            guidance=self._guidance(),
            strength=self.config.diffusion_strength,
            face_strength=self.config.diffusion_face_strength,
        )
        timings: dict[str, float] = {}
        with self._lock:
            start = time.perf_counter()
            if self._ensure_loaded(progress):
                timings["diffusion_load"] = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            # ZeroGPU's worker cannot call back into this process, so no per-step progress there.
            out = self._run(job, None if self._zero_gpu else progress)
            timings["diffusion"] = (time.perf_counter() - start) * 1000
        result = np.asarray(Image.fromarray(out).resize((width, height), Image.Resampling.LANCZOS))
        if progress is not None:
            progress(1.0, "diffusion done")
        return StylizeResult(image=result, backend=self.name, style=style, timings_ms=timings)

    def _generate(self, job: _Job, progress: ProgressFn | None) -> np.ndarray:
        """Run differential img2img; returns h x w x 3 uint8 at diffusion resolution."""
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self._pipe
        device = pipe._execution_device
        dtype = pipe.unet.dtype
        with torch.inference_mode():
            init = self._encode(job.image, device, dtype)
        mask = torch.from_numpy(job.face_mask)[None, None].to(device=device, dtype=torch.float32)
        mask = torch.nn.functional.interpolate(mask, size=init.shape[-2:], mode="area")
        # Per-latent-pixel strength and, from it, how many of the nominal steps each pixel gets.
        pixel_steps = job.steps * (job.strength * (1 - mask) + job.face_strength * mask)
        fewest_steps = float(pixel_steps.min())  # on the host: no GPU sync inside the loop
        # The pipeline draws its img2img noise first from this generator; drawing the same
        # tensor here lets the callback re-noise held pixels with exactly that noise.
        noise = randn_tensor(
            init.shape,
            generator=torch.Generator().manual_seed(job.seed),
            device=device,
            dtype=dtype,
        )
        generator = torch.Generator().manual_seed(
            job.seed
        )  # CPU generator: same image on any device

        def on_step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            total = p.num_timesteps
            remaining = total - i - 1
            # 1 = keep this pixel at the original image (re-noised), 0 = let it denoise; the
            # fractional band turns fractional step counts into a partial hold.
            if 1 + remaining - fewest_steps > 0:
                hold = (1 + remaining - pixel_steps).clamp(0, 1)
                index = len(p.scheduler.timesteps) - total + i + 1
                if index < len(p.scheduler.timesteps):
                    anchor = p.scheduler.add_noise(
                        init, noise, p.scheduler.timesteps[index : index + 1]
                    )
                else:
                    anchor = init
                latents = kwargs["latents"]
                kwargs["latents"] = torch.lerp(latents.float(), anchor.float(), hold).to(
                    latents.dtype
                )
            if progress is not None:
                progress(0.95 * (i + 1) / total, f"diffusion step {i + 1}/{total}")
            return kwargs

        images = pipe(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            image=init,  # 4-channel input = latents: the pipeline skips its own encode
            strength=max(job.strength, job.face_strength),
            num_inference_steps=job.steps,
            guidance_scale=job.guidance,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step_end,
        ).images
        out = images[0]
        if not np.isfinite(out).all():
            # Usually an fp16 overflow in the VAE: warn rather than return a silent black image.
            log.warning("diffusion output had non-finite values (fp16 overflow?); clamped")
            out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
        return (np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8)

    def _encode(self, image: np.ndarray, device: Any, dtype: Any) -> Any:
        """VAE-encode an RGB uint8 image to scaled SDXL latents (mode of the posterior, so the
        same photo always gives the same latents)."""
        import torch

        vae = self._pipe.vae
        x = torch.tensor(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        # The SDXL VAE overflows in fp16; diffusers upcasts it the same way.
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(dtype=torch.float32)
        try:
            latents = vae.encode(x.to(device=device, dtype=vae.dtype)).latent_dist.mode()
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            latents = (latents - mean) * vae.config.scaling_factor / std
        else:
            latents = latents * vae.config.scaling_factor
        return latents.to(dtype)

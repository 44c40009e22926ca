"""SDXL img2img stylizer (GPU recommended; runs, slowly, on CPU).

Identity preservation is differential img2img (:mod:`pipeline.stylize.differential`): the face
is denoised with ``diffusion_face_strength``, the rest with ``diffusion_strength``, in one pass.
The weights (local folder or Hub, LoRAs) are found and fetched by :mod:`pipeline.weights`.

Fast mode (``diffusion_fast``): LCMScheduler, ``diffusion_fast_steps`` steps and
``diffusion_fast_guidance`` (<= 1 turns classifier-free guidance off, halving UNet work). It
needs an LCM-distilled model or the LCM-LoRA (``diffusion_fast_lora``, e.g.
``latent-consistency/lcm-lora-sdxl``), loaded next to the style LoRA.

torch and diffusers are imported only inside functions: importing this module, building a
:class:`DiffusionStylizer` and :meth:`~DiffusionStylizer.availability` stay cheap, so the
CPU-only install never pays for them.

On Hugging Face ZeroGPU (:mod:`pipeline.stylize.zero_gpu`) the model is loaded and moved to
``cuda`` when the stylizer is built, which must happen before the Gradio app launches, and only
the denoising runs inside a ``spaces.GPU`` function.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import BackendUnavailableError
from pipeline.stylize import differential, zero_gpu
from pipeline.stylize.base import Availability, ProgressFn, StylizeResult, check_style
from pipeline.stylize.differential import DenoiseJob, diffusion_size, face_mask
from pipeline.timing import timed
from pipeline.weights import (
    DOWNLOAD_HINT,
    check_lora,
    check_model,
    describe_error,
    fetch_lora,
    hf_offline,
)

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
        self._zero_gpu = zero_gpu.on_zero_gpu(config)
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
                "pip install -r requirements-diffusion.txt (or use the cpu backend).",
            )
        if cfg.zero_gpu and not zero_gpu.spaces_installed():
            # Without it torch sees no GPU on ZeroGPU, and SDXL would crawl along on the CPU.
            return Availability(
                False,
                "SPACES_ZERO_GPU is set but the spaces package is not installed: add `spaces` "
                "to the Space's requirements.txt.",
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

    def _ensure_loaded(self, progress: ProgressFn | None) -> None:
        """Load once (caller holds the lock)."""
        if self._pipe is not None:
            return
        status = self.availability()
        if not status.available:
            raise BackendUnavailableError(status.reason)
        if progress is not None:
            progress(0.0, "loading the diffusion model (first run only)")
        self._pipe = self._configure(
            self._given if self._given is not None else self._from_pretrained()
        )

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
                local_files_only=source.local_dir is not None or hf_offline(),
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
        self._run = zero_gpu.gpu_runner(self, self.config.diffusion_gpu_duration)
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
        from PIL import Image

        check_style(self, style)

        height, width = image.shape[:2]
        w, h = diffusion_size(width, height, self.config.diffusion_size)
        small = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))
        prompt, negative = STYLE_PROMPTS[style]
        job = DenoiseJob(
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
            if self._pipe is None:  # the first run loads the model
                with timed(timings, "diffusion_load"):
                    self._ensure_loaded(progress)
            with timed(timings, "diffusion"):
                # ZeroGPU's worker cannot call back into this process: no per-step progress there.
                out = self._run(job, None if self._zero_gpu else progress)
        result = np.asarray(Image.fromarray(out).resize((width, height), Image.Resampling.LANCZOS))
        if progress is not None:
            progress(1.0, "diffusion done")
        return StylizeResult(image=result, backend=self.name, style=style, timings_ms=timings)


    def _generate(self, job: DenoiseJob, progress: ProgressFn | None) -> np.ndarray:
        """Denoise one job on the loaded pipeline (also the ZeroGPU worker's entry)."""
        return differential.denoise(self._pipe, job, progress)

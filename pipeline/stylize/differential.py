"""Differential img2img: one SDXL img2img pass with a denoising strength per pixel.

Identity preservation: the face (convex hull of the 478 landmarks, feathered) is denoised with
``diffusion_face_strength`` and the rest of the picture with ``diffusion_strength``. The
pipeline runs at the larger of the two; after every scheduler step, latents of pixels that
should not be touched yet are pulled back to the original image's latents, re-noised with the
same noise to the level of the next step (as in SD's mask-guided inpainting). So the face enters
the denoising loop later, i.e. with less noise, and keeps the photo's geometry, while the model
still sees the whole image at every step, so face and background are stylised coherently, with
no seam and at the cost of one run (a two-pass "generate then paste a weaker face" blend would
double the cost and leave a visible border). A soft mask gives a soft transition.

torch and diffusers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.stylize.base import ProgressFn

if TYPE_CHECKING:
    from pipeline.landmarks import FaceAnalysis

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DenoiseJob:
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


def denoise(pipe: Any, job: DenoiseJob, progress: ProgressFn | None) -> np.ndarray:
    """Run differential img2img with ``pipe`` (an SDXL img2img pipeline); returns h x w x 3
    uint8 at diffusion resolution."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    device = pipe._execution_device
    dtype = pipe.unet.dtype
    with torch.inference_mode():
        init = encode_latents(pipe.vae, job.image, device, dtype)
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

def encode_latents(vae: Any, image: np.ndarray, device: Any, dtype: Any) -> Any:
    """VAE-encode an RGB uint8 image to scaled SDXL latents (mode of the posterior, so the
    same photo always gives the same latents)."""
    import torch

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

"""Tiny, randomly initialised SDXL img2img pipelines for offline tests and the benchmark.

Everything is built locally (no Hugging Face hub): the model configs, a byte-level CLIP
tokenizer and, for tests, a LoRA file. The tiny configs keep the real SDXL wiring
("text_time" added conditioning, two text encoders, a 4-block VAE so the VAE scale factor stays
8) so that the production code paths run unchanged, just fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.landmarks import FaceAnalysis, HeadPose

# Each config is the kwargs of the matching diffusers / transformers class.
TINY_ARCH: dict[str, dict[str, Any]] = {
    "unet": dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 1),
        use_linear_projection=True,
        # SDXL's micro-conditioning: 6 size/crop numbers * addition_time_embed_dim plus the
        # pooled embedding of text encoder 2 (projection_dim below).
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16,
        # hidden states of both text encoders are concatenated: 16 + 16
        cross_attention_dim=32,
    ),
    "vae": dict(
        in_channels=3,
        out_channels=3,
        # four blocks -> three downsamplings -> vae_scale_factor 8, as in SDXL
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        sample_size=64,
        scaling_factor=0.13025,
    ),
    "text_encoder": dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        vocab_size=1000,
        hidden_act="quick_gelu",
        projection_dim=16,
    ),
}
# SDXL's second text encoder (OpenCLIP bigG) differs from the first only in size and activation.
TINY_ARCH["text_encoder_2"] = {**TINY_ARCH["text_encoder"], "hidden_act": "gelu"}

# The SDXL base 1.0 scheduler config.
SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode map used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def build_clip_tokenizer(model_max_length: int = 77):
    """A working byte-level CLIP tokenizer from a 514-token in-memory vocab (no merges needed:
    every word falls back to single-byte tokens)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for char in _bytes_to_unicode().values():
        vocab[char] = len(vocab)
    for char in _bytes_to_unicode().values():
        vocab[char + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def build_sdxl_img2img(
    arch: dict[str, dict[str, Any]], *, seed: int = 0, device: str = "cpu", dtype=None
):
    """An SDXL img2img pipeline with random weights for ``arch`` (see :data:`TINY_ARCH`).

    Weights are initialised directly on ``device`` (fast for the full-size model on a GPU) and
    then cast to ``dtype``.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    dtype = dtype or torch.float32
    tokenizer = build_clip_tokenizer()
    special = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**arch["unet"])
        vae = AutoencoderKL(**arch["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**arch["text_encoder"], **special))
        text_encoder_2 = CLIPTextModelWithProjection(
            CLIPTextConfig(**arch["text_encoder_2"], **special)
        )
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )
    if dtype != torch.float32:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sdxl(path: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it as a diffusers folder at ``path``."""
    pipe = build_sdxl_img2img(TINY_ARCH, seed=seed)
    pipe.save_pretrained(path)
    return path


def save_tiny_lora(model_dir: Path, out_dir: Path, seed: int = 1, rank: int = 4) -> Path:
    """A LoRA for the UNet attention projections of the model at ``model_dir``.

    ``lora_B`` is randomised (peft initialises it to zero, which would make the LoRA a no-op).
    Saved the way diffusers' training scripts do, so ``load_lora_weights`` reads it back.
    Returns the ``.safetensors`` file.
    """
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionXLPipeline.save_lora_weights(
        out_dir, unet_lora_layers=layers, safe_serialization=True
    )
    return out_dir / "pytorch_lora_weights.safetensors"


def synthetic_face(width: int, height: int) -> FaceAnalysis:
    """A FaceAnalysis whose 478 landmarks fill an upright ellipse in the middle of the image
    (about 40 % of the width), for backends that only need the face region."""
    rng = np.random.default_rng(0)
    cx, cy = width / 2, height * 0.45
    rx, ry = width * 0.2, height * 0.27
    angle = rng.uniform(0, 2 * np.pi, 478)
    radius = np.sqrt(rng.uniform(0, 1, 478))
    radius[:64] = 1.0  # make sure the outline is there
    points = np.stack(
        [cx + rx * radius * np.cos(angle), cy + ry * radius * np.sin(angle), np.zeros(478)], axis=1
    ).astype(np.float32)
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    yy, xx = np.mgrid[0:height, 0:width]
    person = (((xx - cx) / (rx * 1.6)) ** 2 + ((yy - cy) / (ry * 1.6)) ** 2 <= 1).astype(np.float32)
    return FaceAnalysis(
        landmarks_px=points,
        image_size=(width, height),
        face_count=1,
        confidence=1.0,
        pose=HeadPose(yaw=0.0, pitch=0.0, roll=0.0),
        rotation=np.eye(3),
        bbox=(float(x0), float(y0), float(x1), float(y1)),
        person_mask=person,
    )


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, deterministic RGB uint8 test picture (gradients plus a bright face ellipse)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            xx / max(width - 1, 1),
            yy / max(height - 1, 1),
            0.5 + 0.5 * np.sin(xx / 7 + yy / 11 + seed),
        ],
        axis=-1,
    )
    inside = ((xx - width / 2) / (width * 0.2)) ** 2 + (
        (yy - height * 0.45) / (height * 0.27)
    ) ** 2 <= 1
    image[inside] = image[inside] * 0.3 + np.array([0.9, 0.7, 0.6]) * 0.7
    return (image * 255).round().astype(np.uint8)

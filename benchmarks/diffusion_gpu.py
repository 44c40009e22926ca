"""Warm SDXL img2img latency and peak GPU memory through the production DiffusionStylizer.

Builds the full-size SDXL base 1.0 architecture (UNet, VAE, CLIP ViT-L and OpenCLIP bigG text
encoders) with random weights directly on the device, so no download is needed: the timings
are those of the real model because the work does not depend on the weight values. Each row is
one (size, steps) setting; 4 steps runs fast mode (LCM scheduler, no classifier-free guidance),
30 steps the standard mode (Euler, CFG). img2img only runs ``int(steps * strength)`` of the
steps; the table shows that count as "unet steps".

    python benchmarks/diffusion_gpu.py                      # CUDA, fp16, 1024 and 512 px
    python benchmarks/diffusion_gpu.py --device cpu --tiny  # same code, tiny model (tests)
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.stylize.diffusion import DiffusionStylizer  # noqa: E402
from toonforge_testing.tiny_sdxl import (  # noqa: E402
    SCHEDULER_CONFIG,
    TINY_ARCH,
    build_sdxl_img2img,
    synthetic_face,
    synthetic_photo,
)

# stabilityai/stable-diffusion-xl-base-1.0: unet/config.json, vae/config.json and the two
# text encoders' config.json, as published (defaults omitted).
SDXL_ARCH = {
    "unet": dict(
        sample_size=128,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        attention_head_dim=(5, 10, 20),
        transformer_layers_per_block=(1, 2, 10),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        norm_num_groups=32,
        norm_eps=1e-5,
        act_fn="silu",
        flip_sin_to_cos=True,
        freq_shift=0,
    ),
    "vae": dict(
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=1024,
        scaling_factor=0.13025,
        force_upcast=True,
    ),
    "text_encoder": dict(  # CLIP ViT-L/14
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        vocab_size=49408,
        hidden_act="quick_gelu",
        projection_dim=768,
    ),
    "text_encoder_2": dict(  # OpenCLIP ViT-bigG/14
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=20,
        max_position_embeddings=77,
        vocab_size=49408,
        hidden_act="gelu",
        projection_dim=1280,
    ),
}

log = logging.getLogger("benchmarks.diffusion_gpu")


def _stylizer_for(base, config: Config) -> DiffusionStylizer:
    """A stylizer over the shared modules with its own scheduler (schedulers are stateful)."""
    from diffusers import EulerDiscreteScheduler

    components = dict(base.components, scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG))
    pipe = type(base)(
        **components, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True
    )
    return DiffusionStylizer(config, pipeline=pipe)


def run(args: argparse.Namespace) -> dict:
    import diffusers
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda but torch sees no CUDA GPU; use --device cpu --tiny to smoke-test."
        )
    dtype = torch.float16 if cuda else torch.float32
    arch = TINY_ARCH if args.tiny else SDXL_ARCH
    sizes = args.sizes or ([128, 64] if args.tiny else [1024, 512])

    start = time.perf_counter()
    base = build_sdxl_img2img(arch, device=args.device, dtype=dtype)
    if cuda:
        torch.cuda.synchronize()
    build_s = time.perf_counter() - start
    params = {name: sum(p.numel() for p in getattr(base, name).parameters()) for name in arch}
    log.info("built %s in %.1f s: %s", "tiny SDXL" if args.tiny else "SDXL", build_s, params)

    defaults = replace(Config(), device=args.device, diffusion_strength=args.strength)
    rows = []
    for size in sizes:
        photo, face = synthetic_photo(size, size), synthetic_face(size, size)
        for steps in args.steps:
            fast = steps <= 8  # few steps only make sense with the LCM scheduler
            config = replace(
                defaults,
                diffusion_size=size,
                diffusion_steps=steps,
                diffusion_fast=fast,
                diffusion_fast_steps=steps,
            )
            stylizer = _stylizer_for(base, config)
            for i in range(args.warmup):
                stylizer.stylize(photo, face, "toon", i)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for i in range(args.runs):
                start = time.perf_counter()
                stylizer.stylize(photo, face, "toon", 1000 + i)  # returns numpy: GPU work is done
                times.append((time.perf_counter() - start) * 1000)
            p50, p95 = np.percentile(times, [50, 95])
            rows.append(
                {
                    "size": size,
                    "steps": steps,
                    "mode": "fast (LCM, no CFG)" if fast else "standard (Euler, CFG)",
                    "unet_steps": int(
                        steps * max(config.diffusion_strength, config.diffusion_face_strength)
                    ),
                    "guidance": stylizer._guidance(),
                    "runs": args.runs,
                    "p50_ms": round(float(p50), 2),
                    "p95_ms": round(float(p95), 2),
                    "mean_ms": round(float(np.mean(times)), 2),
                    "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                    if cuda
                    else None,
                }
            )
            log.info("%s", rows[-1])
    return {
        "benchmark": "diffusion_gpu",
        "tiny": args.tiny,
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if cuda
        else platform.processor() or platform.machine(),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "strength": defaults.diffusion_strength,
        "face_strength": defaults.diffusion_face_strength,
        "parameters": params,
        "build_s": round(build_s, 2),
        "results": rows,
    }


def print_table(report: dict) -> None:
    print(
        f"SDXL img2img{' (tiny)' if report['tiny'] else ''} on {report['device_name']} "
        f"[{report['dtype']}], strength {report['strength']}, face {report['face_strength']}"
    )
    header = (
        f"{'size':>6} {'steps':>5} {'unet':>5} {'mode':<22} "
        f"{'p50 ms':>10} {'p95 ms':>10} {'peak MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        peak = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        print(
            f"{r['size']:>6} {r['steps']:>5} {r['unet_steps']:>5} {r['mode']:<22} "
            f"{r['p50_ms']:>10.1f} {r['p95_ms']:>10.1f} {peak:>9}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random SDXL (for tests / no GPU)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="image sides (default 1024 512; tiny: 128 64)"
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[4, 30], help="scheduler steps (default 4 30)"
    )
    parser.add_argument("--strength", type=float, default=Config().diffusion_strength)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per row (default 1)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "diffusion_gpu.json"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run(args)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fetch and inspect the diffusion backend's weights.

    python -m pipeline.weights download  # TOONFORGE_DIFFUSION_MODEL/_LORA/_FAST_LORA -> HF cache
    python -m pipeline.weights status    # can the diffusion backend run here, and if not, why

``download`` fetches only what the SDXL img2img pipeline loads (the configured variant, safetensors
only), not every file of the repo. Exit codes: 0 ok, 1 (status) unavailable, 2 nothing configured
or a download failed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from pipeline.config import Config
from pipeline.errors import BackendUnavailableError


def _download_model(config: Config) -> str:
    """Fetch the SDXL pipeline; returns where it is. Raises BackendUnavailableError."""
    from pipeline.stylize.diffusion import check_model, describe_error

    ref = config.diffusion_model
    source = check_model(ref)
    if not source.repo_id:  # a local folder (or none): nothing to download, just validate it
        if source.problem:
            raise BackendUnavailableError(source.problem)
        return f"local folder {source.local_dir}"
    from diffusers import StableDiffusionXLImg2ImgPipeline

    try:
        path = StableDiffusionXLImg2ImgPipeline.download(
            ref, variant=config.diffusion_variant or None, use_safetensors=True
        )
    except (OSError, ValueError) as exc:  # HTTP, auth, missing variant files, offline mode
        raise BackendUnavailableError(
            f"Could not download {ref!r}: {describe_error(exc)}. Check the repo id, the "
            "network, HF_TOKEN for gated repos, TOONFORGE_DIFFUSION_VARIANT (e.g. fp16) and that "
            "HF_HUB_OFFLINE is not set."
        ) from exc
    return str(path)


def download(config: Config) -> int:
    from pipeline.stylize.diffusion import fetch_lora

    if not config.diffusion_model:
        print(
            "Nothing to download: set TOONFORGE_DIFFUSION_MODEL to an SDXL Hub id (e.g. "
            "stabilityai/stable-diffusion-xl-base-1.0, with TOONFORGE_DIFFUSION_VARIANT=fp16) or "
            "a local diffusers folder.",
            file=sys.stderr,
        )
        return 2
    try:
        print(f"model: {config.diffusion_model} -> {_download_model(config)}")
        for ref, env_name in (
            (config.diffusion_lora, "TOONFORGE_DIFFUSION_LORA"),
            (config.diffusion_fast_lora, "TOONFORGE_DIFFUSION_FAST_LORA"),
        ):
            if ref:
                print(f"{env_name}: {ref} -> {fetch_lora(ref, env_name)}")
    except BackendUnavailableError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    return 0


def status(config: Config) -> int:
    from pipeline.stylize.diffusion import DiffusionStylizer

    check = DiffusionStylizer(config).availability()
    print(f"model: {config.diffusion_model or '(not set)'}")
    if config.diffusion_lora:
        print(f"lora: {config.diffusion_lora} (scale {config.diffusion_lora_scale})")
    if config.diffusion_fast:
        print(
            f"fast mode: {config.diffusion_fast_steps} steps, "
            f"LCM-LoRA {config.diffusion_fast_lora or '(none)'}"
        )
    print(f"diffusion backend: {'available' if check.available else 'unavailable'}")
    if check.reason:
        print(check.reason)
    return 0 if check.available else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("download", "status"))
    parser.add_argument("--model", help="override TOONFORGE_DIFFUSION_MODEL")
    parser.add_argument("--lora", help="override TOONFORGE_DIFFUSION_LORA")
    parser.add_argument("--variant", help="override TOONFORGE_DIFFUSION_VARIANT (e.g. fp16)")
    args = parser.parse_args(argv)
    config = Config.from_env()
    overrides = {
        key: value
        for key, value in (
            ("diffusion_model", args.model),
            ("diffusion_lora", args.lora),
            ("diffusion_variant", args.variant),
        )
        if value is not None
    }
    config = replace(config, **overrides)
    return download(config) if args.command == "download" else status(config)


if __name__ == "__main__":
    sys.exit(main())

"""Find, check and fetch the diffusion backend's weights: SDXL model and LoRAs, given as a local
folder or file or as a Hugging Face Hub reference. The checks never load a model or use the
network; only :func:`fetch_lora` and ``download`` do.

    python -m pipeline.weights download  # TOONFORGE_DIFFUSION_MODEL/_LORA/_FAST_LORA -> HF cache
    python -m pipeline.weights status    # can the diffusion backend run here, and if not, why

``download`` fetches only what the SDXL img2img pipeline loads (the configured variant, safetensors
only), not every file of the repo. Exit codes: 0 ok, 1 (status) unavailable, 2 nothing configured
or a download failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import BackendUnavailableError

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
DOWNLOAD_HINT = "run `python -m pipeline.weights download`"

_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")



def describe_error(exc: BaseException) -> str:
    """An exception as a clause inside our own sentence."""
    return (str(exc).strip().rstrip(".") or type(exc).__name__).replace("\n", " ")


def hf_offline() -> bool:
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
    if hf_offline():
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
    if hf_offline():
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



# --------------------------------------------------------------------------- command line


def _download_model(config: Config) -> str:
    """Fetch the SDXL pipeline; returns where it is. Raises BackendUnavailableError."""
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

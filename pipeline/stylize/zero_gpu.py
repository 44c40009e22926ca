"""Hugging Face ZeroGPU glue for the diffusion backend.

On ZeroGPU (``SPACES_ZERO_GPU``, read into ``Config.zero_gpu``, and the ``spaces`` package) a
GPU is lent only to functions decorated with ``spaces.GPU``, and only for their duration.
ZeroGPU runs the decorated function in a forked worker and pickles its arguments, so the entry
point is a module-level function that finds its (already loaded, inherited) stylizer by key
instead of receiving it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.stylize.base import ProgressFn
    from pipeline.stylize.differential import DenoiseJob
    from pipeline.stylize.diffusion import DiffusionStylizer

_STYLIZERS: dict[int, "DiffusionStylizer"] = {}
_gpu_entry: Any = None  # the spaces.GPU-wrapped _gpu_generate, made once per process


def spaces_installed() -> bool:
    return importlib.util.find_spec("spaces") is not None


def on_zero_gpu(config: "Config") -> bool:
    """Whether this process runs on a ZeroGPU Space and can use its ``spaces`` package."""
    return config.zero_gpu and spaces_installed()


def _gpu_generate(key: int, job: "DenoiseJob") -> np.ndarray:
    return _STYLIZERS[key]._generate(job, None)


def gpu_runner(
    stylizer: "DiffusionStylizer", duration_s: int
) -> Callable[["DenoiseJob", "ProgressFn | None"], np.ndarray]:
    """Register ``stylizer`` and return its run function: denoising inside ``spaces.GPU``.

    ZeroGPU's worker cannot call back into this process, so the returned function ignores
    progress."""
    global _gpu_entry
    import spaces  # must be imported before torch initialises CUDA

    if _gpu_entry is None:
        _gpu_entry = spaces.GPU(duration=duration_s)(_gpu_generate)
    key = id(stylizer)
    _STYLIZERS[key] = stylizer
    entry = _gpu_entry
    return lambda job, _progress: entry(key, job)

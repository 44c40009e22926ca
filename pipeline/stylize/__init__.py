"""Stylization backends, looked up by name. Backends are built lazily and kept warm."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pipeline.errors import BackendUnavailableError, UnknownBackendError
from pipeline.stylize.base import Availability, ProgressFn, StylizeResult, Stylizer, check_style

if TYPE_CHECKING:
    from pipeline.config import Config

BACKEND_NAMES = ("cpu", "diffusion")

_lock = threading.Lock()
_instances: dict[tuple[str, "Config"], Stylizer] = {}


def _build(name: str, config: "Config") -> Stylizer:
    # Imports live here so that the CPU path never imports torch or diffusers.
    if name == "cpu":
        from pipeline.stylize.cartoon import CartoonStylizer

        return CartoonStylizer()
    if name == "diffusion":
        from pipeline.stylize.diffusion import DiffusionStylizer

        return DiffusionStylizer(config)
    raise UnknownBackendError(
        f"Unknown backend {name!r}. Choose one of: {', '.join(BACKEND_NAMES)}."
    )


def get_stylizer(name: str, config: "Config") -> Stylizer:
    """The (cached) backend called ``name``; raises if unknown."""
    key = (name, config)
    with _lock:
        if key not in _instances:
            _instances[key] = _build(name, config)
        return _instances[key]


def use_stylizer(name: str, config: "Config", stylizer: Stylizer) -> None:
    """Make ``get_stylizer(name, config)`` answer ``stylizer`` in this process: how a Ray
    replica hands the diffusion stage to the GPU deployment (service/ray_deployments.py)."""
    if name not in BACKEND_NAMES:
        raise UnknownBackendError(f"Unknown backend {name!r}. Choose one of: {', '.join(BACKEND_NAMES)}.")
    with _lock:
        _instances[(name, config)] = stylizer


def backend_availability(config: "Config") -> dict[str, Availability]:
    """Availability of every backend, without loading any model."""
    return {name: get_stylizer(name, config).availability() for name in BACKEND_NAMES}


def require_available(stylizer: Stylizer) -> None:
    status = stylizer.availability()
    if not status.available:
        raise BackendUnavailableError(status.reason)


__all__ = [
    "Availability",
    "BACKEND_NAMES",
    "ProgressFn",
    "StylizeResult",
    "Stylizer",
    "backend_availability",
    "check_style",
    "get_stylizer",
    "use_stylizer",
    "require_available",
]

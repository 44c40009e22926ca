"""The stylizer seam: every 2D backend takes the working photo plus its face analysis and
returns a cartoon image of the same size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from pipeline.errors import UnknownStyleError

if TYPE_CHECKING:
    from pipeline.landmarks import FaceAnalysis

# progress(fraction 0..1 within the stage, message)
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here and, if not, why and how to enable it."""

    available: bool
    reason: str = ""


@dataclass
class StylizeResult:
    image: np.ndarray  # H x W x 3 uint8 RGB, same size as the input photo
    backend: str
    style: str
    timings_ms: dict[str, float] = field(default_factory=dict)


class Stylizer(Protocol):
    """A 2D stylization backend."""

    name: str
    styles: tuple[str, ...]

    def availability(self) -> Availability:
        """Cheap check (no model loading) of whether :meth:`stylize` can work here."""
        ...

    def stylize(
        self,
        image: np.ndarray,
        face: "FaceAnalysis",
        style: str,
        seed: int,
        progress: ProgressFn | None = None,
    ) -> StylizeResult:
        ...


def check_style(stylizer: Stylizer, style: str) -> None:
    """Raise :class:`UnknownStyleError` (an ``OptionError``) unless ``stylizer`` has ``style``."""
    if style not in stylizer.styles:
        raise UnknownStyleError(
            f"Unknown style {style!r} for the {stylizer.name} backend. "
            f"Choose one of: {', '.join(stylizer.styles)}."
        )

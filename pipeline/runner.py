"""The one entry point: ``run(image, options) -> FigurineResult``, timing every stage."""

from __future__ import annotations

import math
import shutil
import tempfile
from contextlib import contextmanager
from functools import cache
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from pipeline.colorprint import DEFAULT_COLORS, check_colors, parse_palette
from pipeline.config import Config
from pipeline.errors import OptionError
from pipeline.export import REPORT_NAME, ColourPrintSummary, export_figurine, write_report
from pipeline.fusion import fuse_template, start_manifold_single_threaded
from pipeline.landmarks import FaceAnalysis, detect_landmarks
from pipeline.quality import QualityReport
from pipeline.stylize import ProgressFn, check_style, get_stylizer, require_available
from pipeline.templates import load_template
from pipeline.timing import timed
from pipeline.validate import ImageInput, validate_image

STAGES = ("validate", "landmarks", "stylize", "fusion", "export")
# Share of the progress bar each stage covers; diffusion makes stylize the long one.
_PROGRESS_SPAN = {
    "validate": (0.0, 0.05),
    "landmarks": (0.05, 0.15),
    "stylize": (0.15, 0.65),
    "fusion": (0.65, 0.85),
    "export": (0.85, 1.0),
}
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Options:
    """What the user chose. ``backend=None`` and ``height_mm=None`` mean the configured default.
    ``colors`` filament colours for the 3MF (1-8), or ``palette``, the user's own filament
    colours ("#rrggbb" each), which sets ``colors`` to its length."""

    template: str = "default"
    style: str = "toon"
    backend: str | None = None
    seed: int = 0
    height_mm: float | None = None
    colors: int = DEFAULT_COLORS
    palette: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FaceSummary:
    count: int
    confidence: float
    yaw: float
    pitch: float
    roll: float

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "confidence": round(self.confidence, 3),
            "pose": {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)},
        }


@dataclass
class FigurineResult:
    out_dir: Path
    glb_path: Path
    stl_path: Path
    preview_path: Path
    stylized_path: Path
    report_path: Path
    template: str
    style: str
    backend: str
    height_mm: float
    face: FaceSummary
    quality: QualityReport
    timings_ms: dict[str, float] = field(default_factory=dict)
    _stylized: np.ndarray | None = field(default=None, repr=False, compare=False)
    threemf_path: Path | None = None
    print_preview_path: Path | None = None
    colour_print: ColourPrintSummary | None = None
    grey_glb_path: Path | None = None  # the STL's solid in grey, for a browser viewer

    @property
    def stylized(self) -> np.ndarray:
        """The cartoon image (RGB uint8); read back from ``stylized_path`` after pickling."""
        if self._stylized is None:
            with Image.open(self.stylized_path) as image:
                self._stylized = np.asarray(image.convert("RGB"))
        return self._stylized

    def __getstate__(self) -> dict:
        # Results cross from worker processes to the server, which never needs the pixels:
        # the image is on disk already, and shipping it cost 5 ms per 1024 px photo.
        return {**self.__dict__, "_stylized": None}

    def report(self) -> dict:
        """The content of ``report.json``."""
        return {
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "quality": self.quality.to_dict(),
            "face": self.face.to_dict(),
            "template": self.template,
            "style": self.style,
            "backend": self.backend,
            "height_mm": self.height_mm,
            "print": self.colour_print.to_dict() if self.colour_print else None,
        }


def resolve_options(options: Options, config: Config) -> Options:
    """Check every option before any work is done; fill in configured defaults."""
    backend = options.backend or config.default_backend
    stylizer = get_stylizer(backend, config)
    check_style(stylizer, options.style)
    load_template(options.template)
    height = config.default_height_mm if options.height_mm is None else float(options.height_mm)
    if not math.isfinite(height) or not config.min_height_mm <= height <= config.max_height_mm:
        raise OptionError(
            f"Height must be between {config.min_height_mm:.0f} and {config.max_height_mm:.0f} mm."
        )
    if not 0 <= int(options.seed) <= MAX_SEED:
        raise OptionError(f"Seed must be between 0 and {MAX_SEED}.")
    palette = parse_palette(options.palette) if options.palette else None
    colors = len(palette) if palette else check_colors(options.colors)
    require_available(stylizer)
    return replace(
        options, backend=backend, seed=int(options.seed), height_mm=height, colors=colors, palette=palette
    )


class _Clock:
    def __init__(self, progress: ProgressFn | None) -> None:
        self.timings: dict[str, float] = {}
        self._progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0.0)
        with timed(self.timings, name):
            yield
        self.report(name, 1.0)

    def report(self, stage: str, fraction: float) -> None:
        if self._progress:
            lo, hi = _PROGRESS_SPAN[stage]
            self._progress(lo + (hi - lo) * fraction, stage)

    def within(self, stage: str) -> ProgressFn:
        """A progress callback for work inside ``stage``."""
        return lambda fraction, _message: self.report(stage, fraction)

    def add_substages(self, stage: str, timings: dict[str, float]) -> None:
        for key, value in timings.items():
            self.timings[f"{stage}.{key}"] = value


@cache
def _single_threaded_libraries() -> None:
    """Our arrays and meshes are small: library worker threads mostly spin or contend, and
    concurrent requests need the CPU they burn. Measured here: two concurrent pipelines ran
    1.7x slower than one alone with OpenBLAS's default threads and 1.65x faster in total with
    one; for Manifold see :func:`start_manifold_single_threaded`. OpenCV keeps its threads
    (they save 25 ms of a lone 512 px photo); the worker processes size them per job."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    start_manifold_single_threaded()


def run(
    image: ImageInput,
    options: Options = Options(),
    *,
    out_dir: Path | None = None,
    config: Config | None = None,
    progress: ProgressFn | None = None,
) -> FigurineResult:
    """Photo in, figurine files out. Raises a :class:`ToonforgeError` on unusable input."""
    config = config or Config.from_env()
    _single_threaded_libraries()
    clock = _Clock(progress)
    made_dir = out_dir is None
    try:
        with timed(clock.timings, "total"):
            # 1. check the options before touching the photo
            options = resolve_options(options, config)
            if out_dir is None:
                config.data_dir.mkdir(parents=True, exist_ok=True)
                out_dir = Path(tempfile.mkdtemp(prefix="run-", dir=config.data_dir))
            result = _run_stages(image, options, out_dir, config, clock)
        write_report(result.report(), out_dir)
        return result
    except BaseException:
        if made_dir and out_dir is not None:  # a folder we made for a run that produced nothing
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _run_stages(
    image: ImageInput,
    options: Options,
    out_dir: Path,
    config: Config,
    clock: _Clock,
) -> FigurineResult:
    """Stages 2-6; ``clock.timings`` is the result's ``timings_ms`` (``run`` adds the total)."""
    assert options.backend is not None and options.height_mm is not None

    # 2. validate
    with clock.stage("validate"):
        photo = validate_image(image, config).image
    # 3. landmarks
    with clock.stage("landmarks"):
        face: FaceAnalysis = detect_landmarks(photo, config)
    clock.add_substages("landmarks", face.timings_ms)
    # 4. stylize
    with clock.stage("stylize"):
        stylizer = get_stylizer(options.backend, config)
        styled = stylizer.stylize(photo, face, options.style, options.seed, clock.within("stylize"))
    clock.add_substages("stylize", styled.timings_ms)
    # 5. fusion
    with clock.stage("fusion"):
        fusion = fuse_template(face, styled.image, photo, options.template)
    clock.add_substages("fusion", fusion.timings_ms)
    # 6. export
    with clock.stage("export"):
        files = export_figurine(
            fusion, styled.image, out_dir, options.height_mm, colors=options.colors, palette=options.palette
        )
    clock.add_substages("export", files.timings_ms)

    return FigurineResult(
        out_dir=out_dir,
        glb_path=files.glb_path,
        stl_path=files.stl_path,
        preview_path=files.preview_path,
        stylized_path=files.stylized_path,
        report_path=out_dir / REPORT_NAME,
        template=fusion.template,
        style=options.style,
        backend=styled.backend,
        height_mm=options.height_mm,
        face=FaceSummary(
            count=face.face_count,
            confidence=face.confidence,
            yaw=face.pose.yaw,
            pitch=face.pose.pitch,
            roll=face.pose.roll,
        ),
        quality=fusion.quality,
        timings_ms=clock.timings,
        _stylized=styled.image,
        threemf_path=files.threemf_path,
        print_preview_path=files.print_preview_path,
        colour_print=files.colour_print,
        grey_glb_path=files.grey_glb_path,
    )

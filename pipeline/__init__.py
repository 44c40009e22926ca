"""Toonforge pipeline: photo -> cartoon image -> 3D figurine. Never imports gradio."""

from pipeline.config import Config
from pipeline.errors import ToonforgeError
from pipeline.runner import STAGES, FigurineResult, Options, resolve_options, run

__all__ = ["Config", "FigurineResult", "Options", "STAGES", "ToonforgeError", "resolve_options", "run"]

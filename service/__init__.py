"""Toonforge service layer: HTTP API, job pool, result storage and metrics around ``pipeline``.

The pipeline never imports this package; gradio is imported here only to mount the UI.
"""

__version__ = "0.1.0"

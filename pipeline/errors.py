"""The one exception family. Every message tells the user what to do next.

Each class carries a stable ``code``; interfaces (UI, HTTP, CLI) map classes to their own form
in one place each and never parse messages.
"""

from __future__ import annotations


class ToonforgeError(Exception):
    """Base of every error a user can act on."""

    code = "toonforge_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InputError(ToonforgeError):
    """The uploaded photo cannot be used."""

    code = "bad_input"


class NotAnImageError(InputError):
    code = "not_an_image"


class UnsupportedFormatError(InputError):
    code = "unsupported_format"


class TruncatedImageError(InputError):
    code = "truncated_image"


class ImageTooLargeError(InputError):
    code = "image_too_large"


class ImageTooSmallError(InputError):
    code = "image_too_small"


class BadAspectRatioError(InputError):
    code = "bad_aspect_ratio"


class NoFaceError(InputError):
    code = "no_face"


class FaceTooSmallError(InputError):
    code = "face_too_small"


class OptionError(ToonforgeError):
    """A request option is out of range or malformed."""

    code = "bad_parameter"


class UnknownTemplateError(OptionError):
    code = "unknown_template"


class UnknownStyleError(OptionError):
    code = "unknown_style"


class UnknownBackendError(OptionError):
    code = "unknown_backend"


class BackendUnavailableError(ToonforgeError):
    """The backend exists but cannot run here (no weights, no GPU, missing package)."""

    code = "backend_unavailable"


class BusyError(ToonforgeError):
    """Too many requests are waiting; try again shortly."""

    code = "busy"

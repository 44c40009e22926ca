"""The one mapping from Toonforge errors to HTTP: status code, stable code, Retry-After.

Pipeline errors carry their stable ``code``; this module only decides the HTTP status. The few
errors that exist only in the service (unknown result, slow upload) are defined here too.
"""

from __future__ import annotations

from pipeline.errors import (
    BackendUnavailableError,
    BusyError,
    ImageTooLargeError,
    InputError,
    OptionError,
    ToonforgeError,
    UnknownBackendError,
    UnknownStyleError,
    UnknownTemplateError,
    UnsupportedFormatError,
)


class NotFoundError(ToonforgeError):
    """No such result (never existed, expired, or evicted)."""

    code = "not_found"


class RequestTimeoutError(ToonforgeError):
    """The client took too long to send its request body."""

    code = "request_timeout"


class RayUnavailableError(RuntimeError):
    """Ray mode was asked for but cannot start: Ray is not installed or the cluster is
    unreachable. Raised at startup (the process exits with its one-line message), never
    for a request."""


# Looked up along the exception's MRO, so a subclass inherits its parent's status.
HTTP_STATUS: dict[type[ToonforgeError], int] = {
    ToonforgeError: 400,
    InputError: 400,
    ImageTooLargeError: 413,
    UnsupportedFormatError: 415,
    OptionError: 400,
    UnknownTemplateError: 422,
    UnknownStyleError: 422,
    UnknownBackendError: 422,
    BackendUnavailableError: 503,
    BusyError: 503,
    NotFoundError: 404,
    RequestTimeoutError: 408,
}

# Seconds a client should wait before retrying a 503 unless the error says otherwise.
DEFAULT_RETRY_AFTER_S = {BusyError: 5, BackendUnavailableError: 60}

INTERNAL_ERROR = "internal_error"
INTERNAL_DETAIL = (
    "Something went wrong on our side. Try again; if it keeps failing, quote the X-Request-ID."
)


def http_status(exc: ToonforgeError) -> int:
    """HTTP status for ``exc``: the entry of its nearest class in :data:`HTTP_STATUS`."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    raise TypeError(f"{type(exc).__name__} is not a ToonforgeError")


def retry_after_s(exc: ToonforgeError) -> int | None:
    """Seconds for the Retry-After header, or None when retrying will not help."""
    explicit = getattr(exc, "retry_after_s", None)
    if explicit is not None:
        return max(1, int(explicit))
    for cls in type(exc).__mro__:
        if cls in DEFAULT_RETRY_AFTER_S:
            return DEFAULT_RETRY_AFTER_S[cls]
    return None


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}

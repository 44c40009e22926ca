"""Streaming, bounded multipart/form-data reader that keeps the photo in memory.

Starlette's own parser spools files over 1 MB to disk; uploaded photos must never touch the
disk, and an oversize body must be refused before it is all received.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from pipeline.errors import ImageTooLargeError, OptionError
from service.errors import RequestTimeoutError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024  # option values are short words and numbers
MAX_PARTS = 16
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and option fields
BODY_TIMEOUT_S = 60.0  # a client that trickles its body must not hold a connection forever


@dataclass
class UploadForm:
    file: bytes | None = None
    fields: dict[str, str] = field(default_factory=dict)


def _too_large(max_file_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The upload is larger than the {max_file_bytes / 1e6:.0f} MB limit. "
        "Upload a smaller or more compressed photo."
    )


def _malformed(why: str) -> OptionError:
    return OptionError(f"{why} Send the photo as multipart/form-data in the field '{FILE_FIELD}'.")


class _Collector:
    """Callbacks for python-multipart that gather at most one file and a few short fields."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.form = UploadForm()
        self.finished = False
        self._parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise _malformed("Too many form fields.")
        self._name, self._is_file, self._buffer = None, False, bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_field).strip().lower() == b"content-disposition":
            _kind, params = parse_options_header(bytes(self._header_value))
            name = params.get(b"name")
            self._name = name.decode("utf-8", "replace") if name is not None else None
            # The client's file name is deliberately ignored: it never reaches a path or a log.
            self._is_file = self._name == FILE_FIELD
        self._header_field.clear()
        self._header_value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        limit = self.max_file_bytes if self._is_file else MAX_FIELD_BYTES
        if len(self._buffer) + (end - start) > limit:
            if self._is_file:
                raise _too_large(self.max_file_bytes)
            raise OptionError(f"The form field {self._name!r} is too long.")
        self._buffer.extend(data[start:end])

    def _part_end(self) -> None:
        if self._name is None:
            raise _malformed("A form part has no name.")
        if self._is_file:
            if self.form.file is not None:
                raise _malformed("Send exactly one photo.")
            self.form.file = bytes(self._buffer)
        else:
            try:
                self.form.fields[self._name] = self._buffer.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise OptionError(f"The form field {self._name!r} is not valid UTF-8 text.") from exc

    def _end(self) -> None:
        self.finished = True


async def read_upload(request: Request, max_file_bytes: int) -> UploadForm:
    """Read the multipart body of ``request`` with every limit applied while streaming."""
    max_body = max_file_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _malformed("The Content-Length header is malformed.")
        if int(declared) > max_body:  # refuse before reading a single byte of it
            raise _too_large(max_file_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _malformed("The request is not multipart/form-data.")
    collector = _Collector(max_file_bytes)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
    except MultipartParseError as exc:
        raise _malformed("The multipart boundary is invalid.") from exc
    received = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_body:
                    raise _too_large(max_file_bytes)
                parser.write(chunk)
        parser.finalize()
    except TimeoutError as exc:
        raise RequestTimeoutError(
            f"The upload took longer than {BODY_TIMEOUT_S:.0f} s. Check the connection and retry."
        ) from exc
    except MultipartParseError as exc:
        raise _malformed("The multipart body is malformed.") from exc
    if not collector.finished:
        raise _malformed("The multipart body ended early.")
    if collector.form.file is None:
        raise _malformed("No photo found.")
    return collector.form

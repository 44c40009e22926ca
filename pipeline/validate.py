"""Stage 1: decode the upload safely and turn it into an RGB working copy.

Limits are checked from the header, before pixels are decoded, so a decompression bomb
costs nothing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.config import Config
from pipeline.errors import (
    BadAspectRatioError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
SUPPORTED_HINT = "JPEG, PNG, WebP, BMP, GIF or TIFF"
BACKDROP_RGB = (255, 255, 255)

ImageInput = Union[bytes, bytearray, str, Path, Image.Image, np.ndarray]


@dataclass
class ValidatedImage:
    image: np.ndarray  # H x W x 3 uint8 RGB working copy, long side <= working_max_side
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    source_format: str
    source_mode: str
    exif_rotated: bool

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _sniff_unsupported(head: bytes) -> str | None:
    """Name formats people commonly upload by mistake, to say so instead of 'not an image'."""
    text = head.lstrip()[:512].lower()
    if text.startswith(b"<?xml") or b"<svg" in text:
        return "SVG (a vector drawing)"
    if head.startswith(b"%PDF"):
        return "PDF"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftyphevc"):
        return "HEIC/AVIF"
    return None


def _read_bytes(source: ImageInput, config: Config) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif not isinstance(source, (str, Path)):
        raise NotAnImageError("No photo was given. Upload a photo (JPEG, PNG, WebP...).")
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise NotAnImageError(f"Cannot read the file: {exc.strerror}.") from exc
        if size > config.max_upload_bytes:
            raise ImageTooLargeError(_too_many_bytes(size, config))
        data = path.read_bytes()
    if len(data) > config.max_upload_bytes:
        raise ImageTooLargeError(_too_many_bytes(len(data), config))
    if not data:
        raise NotAnImageError("The file is empty. Upload a photo (JPEG, PNG, WebP...).")
    return data


def _too_many_bytes(size: int, config: Config) -> str:
    return (
        f"The file is {size / 1e6:.1f} MB; the limit is {config.max_upload_bytes / 1e6:.0f} MB. "
        "Upload a smaller or more compressed photo."
    )


def _open(data: bytes, config: Config) -> Image.Image:
    unsupported = _sniff_unsupported(data[:1024])
    if unsupported:
        raise UnsupportedFormatError(
            f"This file is {unsupported}, which is not supported. Upload a {SUPPORTED_HINT} photo."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(_too_many_pixels(config)) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"This file is not an image we can read. Upload a {SUPPORTED_HINT} photo."
        ) from exc
    if img.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"{img.format} images are not supported. Upload a {SUPPORTED_HINT} photo."
        )
    return img


def _too_many_pixels(config: Config, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]}x{size[1]} " if size else ""
    return (
        f"The image {dims}is too large (limit {config.max_pixels / 1e6:.0f} megapixels). "
        "Resize it before uploading."
    )


def _check_dimensions(width: int, height: int, config: Config) -> None:
    if width * height > config.max_pixels:
        raise ImageTooLargeError(_too_many_pixels(config, (width, height)))
    if min(width, height) < config.min_side:
        raise ImageTooSmallError(
            f"The image is {width}x{height} px; the shorter side must be at least "
            f"{config.min_side} px. Use a larger photo."
        )
    aspect = max(width, height) / min(width, height)
    if aspect > config.max_aspect:
        raise BadAspectRatioError(
            f"The image is {aspect:.1f} times longer than it is wide (limit "
            f"{config.max_aspect:.0f}:1). Crop it around the face."
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten every mode to 8-bit RGB; transparency goes onto a plain backdrop."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = (arr - arr.min()) / max(float(np.ptp(arr)), 1e-9)
        img = Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, BACKDROP_RGB + (255,))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def _from_array(array: np.ndarray) -> Image.Image:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise NotAnImageError("Pass images as uint8 arrays (H x W x 3 or H x W).")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        return Image.fromarray(arr)
    raise NotAnImageError(f"Expected an H x W x 3 image array, got shape {arr.shape}.")


def validate_image(source: ImageInput, config: Config) -> ValidatedImage:
    """Decode, orient, check and shrink a photo; raise an :class:`InputError` when unusable."""
    if isinstance(source, np.ndarray):
        img = _from_array(source)
        fmt = "ARRAY"
    elif isinstance(source, Image.Image):
        img = source
        fmt = source.format or "IMAGE"
    else:
        img = _open(_read_bytes(source, config), config)
        fmt = img.format or "UNKNOWN"
    mode = img.mode

    # EXIF orientations 5-8 swap the axes; check the oriented size.
    orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    width, height = img.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    _check_dimensions(width, height, config)

    long_side = max(width, height)
    target = config.working_max_side
    if fmt in ("JPEG", "MPO") and long_side > 2 * target:
        # Let libjpeg decode at a reduced scale: much faster and no full-size buffer.
        img.draft("RGB", (img.size[0] * target // long_side, img.size[1] * target // long_side))
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise TruncatedImageError(
            "The image file is damaged or incomplete (perhaps the upload was cut off). "
            "Upload it again or export a fresh copy."
        ) from exc

    oriented = ImageOps.exif_transpose(img) if orientation != 1 else img
    rgb = _to_rgb(oriented)
    if max(rgb.size) > target:
        scale = target / max(rgb.size)
        new_size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return ValidatedImage(
        image=np.asarray(rgb, dtype=np.uint8).copy(),
        original_size=(width, height),
        source_format=fmt,
        source_mode=mode,
        exif_rotated=orientation != 1,
    )

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline import errors
from pipeline.validate import validate_image
from tests.conftest import encode


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_formats_are_detected_from_bytes(astronaut, config, fmt):
    result = validate_image(encode(astronaut, fmt), config)
    assert result.source_format == fmt
    assert result.image.shape == (512, 512, 3)
    assert result.image.dtype == np.uint8


def test_gif_uses_first_frame(astronaut, config):
    frames = [Image.fromarray(astronaut), Image.fromarray(255 - astronaut)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    result = validate_image(buf.getvalue(), config)
    # The first frame is the bright-background portrait, not its negative.
    assert abs(float(result.image.mean()) - float(astronaut.mean())) < 20


def test_exif_orientation_is_applied(astronaut, config):
    # Store the portrait rotated on its side with orientation 6 ("rotate 90° CW to view").
    sideways = Image.fromarray(astronaut[:, :400]).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(np.asarray(sideways), "JPEG", exif=exif.tobytes())
    result = validate_image(data, config)
    assert result.exif_rotated
    assert result.image.shape[:2] == (512, 400)
    diff = np.abs(result.image.astype(int) - astronaut[:, :400].astype(int)).mean()
    assert diff < 12


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "LA"])
def test_modes_become_rgb(astronaut, config, mode):
    img = Image.fromarray(astronaut).convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "L") else "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    result = validate_image(buf.getvalue(), config)
    assert result.image.shape == (512, 512, 3)
    assert result.source_mode == mode


def test_16_bit_grayscale(astronaut, config):
    grey16 = (np.asarray(Image.fromarray(astronaut).convert("L"), dtype=np.uint16) * 257)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")
    result = validate_image(buf.getvalue(), config)
    assert result.image.shape == (512, 512, 3)
    assert 60 < result.image.mean() < 200  # scaled to 8 bits, not clipped to white


def test_rgba_goes_on_plain_background(astronaut, config):
    rgba = np.dstack([astronaut, np.zeros(astronaut.shape[:2], np.uint8)])  # fully transparent
    result = validate_image(encode(rgba, "PNG"), config)
    assert (result.image == 255).all()


def test_large_image_is_scaled_to_working_size(astronaut, config):
    big = np.asarray(Image.fromarray(astronaut).resize((3000, 3000)))
    result = validate_image(encode(big, "JPEG"), config)
    assert max(result.image.shape[:2]) == config.working_max_side
    assert result.original_size == (3000, 3000)


def test_accepts_paths_and_arrays(astronaut, config, tmp_path):
    path = tmp_path / "photo.weird-extension"
    path.write_bytes(encode(astronaut, "PNG"))
    assert validate_image(path, config).source_format == "PNG"
    assert validate_image(astronaut, config).image.shape == (512, 512, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb's calling card."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", errors.NotAnImageError),
        (b"hello, I am a text file\n" * 10, errors.NotAnImageError),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', errors.UnsupportedFormatError),
        (b"%PDF-1.4\n%...", errors.UnsupportedFormatError),
        (_png_header_only(40000, 40000), errors.ImageTooLargeError),
    ],
    ids=["empty", "text", "svg", "pdf", "bomb"],
)
def test_bad_files_raise_clear_errors(config, data, error):
    with pytest.raises(error) as info:
        validate_image(data, config)
    assert info.value.detail and "Traceback" not in info.value.detail


def test_truncated_jpeg(astronaut_jpeg, config):
    with pytest.raises(errors.TruncatedImageError, match="damaged or incomplete"):
        validate_image(astronaut_jpeg[: len(astronaut_jpeg) // 2], config)


def test_too_many_bytes(config, astronaut):
    from dataclasses import replace

    small_limit = replace(config, max_upload_bytes=1000)
    with pytest.raises(errors.ImageTooLargeError, match="MB"):
        validate_image(encode(astronaut, "PNG"), small_limit)


def test_too_small_and_too_thin(astronaut, config):
    with pytest.raises(errors.ImageTooSmallError, match="at least 128"):
        validate_image(encode(astronaut[:100, :100], "PNG"), config)
    with pytest.raises(errors.BadAspectRatioError):
        validate_image(encode(np.zeros((130, 600, 3), np.uint8), "PNG"), config)

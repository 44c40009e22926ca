"""Regenerate the pictures the README and the UI show, with the project's own code.

    .venv/bin/python tools/make_readme_media.py            # everything
    .venv/bin/python tools/make_readme_media.py --no-app   # skip the browser screenshot

Writes
  assets/templates/{default,superhero,casual}.png  256 px thumbnails for the UI's "Bodies" gallery
  docs/media/templates.png   the three bodies side by side (pipeline preview renderer)
  docs/media/turntable.gif   the figurine turning, 24 pyrender frames (Pillow GIF, < 3 MB)
  docs/media/app.png         the app after a generation (Playwright + Chromium, app.py launched)

All figurines are made from the astronaut portrait in assets/examples (NASA, public domain)
with the CPU backend, so the pictures are the same on every machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # before pyrender is imported

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.body import FigurinePart  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.fusion import fuse_template  # noqa: E402
from pipeline.landmarks import detect_landmarks  # noqa: E402
from pipeline.render import BACKGROUND, get_renderer  # noqa: E402
from pipeline.stylize import get_stylizer  # noqa: E402
from pipeline.templates import load_template, template_names  # noqa: E402
from pipeline.validate import validate_image  # noqa: E402
from toonforge_testing.launch import launched_app, scratch_env  # noqa: E402

MEDIA = ROOT / "docs" / "media"
THUMBS = ROOT / "assets" / "templates"
PHOTO = ROOT / "assets" / "examples" / "astronaut_closeup.jpg"
APP_TEMPLATE = "superhero"
THUMB_PX = 256
STRIP_PX = 400  # each figurine in templates.png
GIF_PX = 320
GIF_FRAMES = 24
GIF_FRAME_MS = 90
MAX_GIF_BYTES = 3 * 1024 * 1024
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--use-gl=angle", "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
BG_RGB = tuple(round(c * 255) for c in BACKGROUND[:3])


def figurine_parts(photo: Path, template: str, config: Config) -> list[FigurinePart]:
    """The figurine's coloured parts, through the same stages as ``pipeline.run``."""
    image = validate_image(photo, config).image
    face = detect_landmarks(image, config)
    styled = get_stylizer("cpu", config).stylize(image, face, "toon", 0, None)
    return fuse_template(face, styled.image, image, template).parts


def _font(size: int) -> ImageFont.ImageFont:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ):
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({image.width}x{image.height}, {path.stat().st_size // 1024} KB)")


def square_crop(renders: list[np.ndarray], margin: float = 0.06) -> tuple[int, int, int, int]:
    """One square box around the figurines of all ``renders`` (so they keep a common scale)."""
    mask = np.zeros(renders[0].shape[:2], dtype=bool)
    for render in renders:
        mask |= np.abs(render.astype(np.int16) - np.array(BG_RGB)).max(axis=-1) > 12
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    side = int(max(bottom - top, right - left) * (1 + 2 * margin))
    side = min(side, *mask.shape)
    cy, cx = (top + bottom) // 2, (left + right) // 2
    y0 = int(np.clip(cy - side // 2, 0, mask.shape[0] - side))
    x0 = int(np.clip(cx - side // 2, 0, mask.shape[1] - side))
    return x0, y0, x0 + side, y0 + side


def make_template_pictures(renders: dict[str, np.ndarray]) -> None:
    """assets/templates/<name>.png thumbnails and docs/media/templates.png."""
    box = square_crop(list(renders.values()))
    renders = {name: np.asarray(Image.fromarray(r).crop(box)) for name, r in renders.items()}
    for name, render in renders.items():
        thumb = Image.fromarray(render).resize((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
        save_png(thumb, THUMBS / f"{name}.png")

    label_h = 56
    font = _font(26)
    strip = Image.new("RGB", (STRIP_PX * len(renders), STRIP_PX + label_h), BG_RGB)
    draw = ImageDraw.Draw(strip)
    for i, (name, render) in enumerate(renders.items()):
        picture = Image.fromarray(render).resize((STRIP_PX, STRIP_PX), Image.Resampling.LANCZOS)
        strip.paste(picture, (i * STRIP_PX, 0))
        label = load_template(name).label
        width = draw.textlength(label, font=font)
        draw.text(((i + 0.5) * STRIP_PX - width / 2, STRIP_PX + 6), label, fill=(40, 40, 48), font=font)
    save_png(strip, MEDIA / "templates.png")


def make_turntable(parts: list[FigurinePart]) -> None:
    renders = get_renderer().turntable(parts, GIF_FRAMES)
    box = square_crop(renders, margin=0.04)
    frames = [
        Image.fromarray(f).crop(box).resize((GIF_PX, GIF_PX), Image.Resampling.LANCZOS)
        for f in renders
    ]
    # One palette for every frame (from a montage of all of them): no flicker between frames.
    montage = Image.new("RGB", (GIF_PX * len(frames), GIF_PX))
    for i, frame in enumerate(frames):
        montage.paste(frame, (i * GIF_PX, 0))
    palette = montage.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    path = MEDIA / "turntable.gif"
    path.parent.mkdir(parents=True, exist_ok=True)
    indexed[0].save(
        path,
        save_all=True,
        append_images=indexed[1:],
        duration=GIF_FRAME_MS,
        loop=0,
        optimize=True,
        disposal=1,
    )
    size = path.stat().st_size
    print(f"wrote {path.relative_to(ROOT)} ({len(frames)} frames, {size // 1024} KB)")
    if size > MAX_GIF_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_GIF_BYTES} byte budget")


@contextmanager
def running_app() -> Iterator[str]:
    """``python app.py`` with throw-away data dirs; yields its URL once the UI page answers."""
    work = Path(tempfile.mkdtemp(prefix="toonforge-media-"))
    env = scratch_env(work)
    try:
        with launched_app(env=env, log_path=work / "app.log", health_path="/") as app:
            yield f"{app.url}/"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_app_screenshot() -> None:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("TOONFORGE_CHROMIUM") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    path = MEDIA / "app.png"
    with running_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        page.locator("#photo img").first.wait_for(state="visible", timeout=30_000)
        page.locator(f"#template-pictures img[alt='{APP_TEMPLATE.title()}']").click()  # a body picture
        page.locator(f"#template input[value='{APP_TEMPLATE}']").wait_for(state="attached")
        page.wait_for_function(
            "t => document.querySelector(`#template input[value='${t}']`).checked", arg=APP_TEMPLATE
        )
        page.locator("#generate").click()
        page.wait_for_function(
            "t => (document.querySelector('#quality')?.innerText || '').includes('template ' + t)",
            arg=APP_TEMPLATE,
            timeout=120_000,
        )
        # let both 3D viewers load and draw the model before the picture is taken
        page.locator("#viewer canvas").wait_for(state="visible", timeout=60_000)
        page.locator("#one-colour canvas").wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#stylized img, #preview img, #print-preview img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        page.wait_for_timeout(6000)  # two SwiftShader canvases
        page.mouse.move(0, 0)
        png = page.screenshot(full_page=True, animations="disabled")
        browser.close()
    image = Image.open(__import__("io").BytesIO(png)).convert("RGB")
    save_png(image, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-app", action="store_true", help="skip docs/media/app.png (needs Chromium)")
    args = parser.parse_args(argv)

    config = replace(Config.from_env(), data_dir=Path(tempfile.mkdtemp(prefix="toonforge-media-")))
    renderer = get_renderer()
    parts = {name: figurine_parts(PHOTO, name, config) for name in template_names()}
    renders = {name: renderer.render(p) for name, p in parts.items()}
    order = [n for n in ("default", "superhero", "casual") if n in renders] + sorted(
        n for n in renders if n not in ("default", "superhero", "casual")
    )
    make_template_pictures({name: renders[name] for name in order})
    make_turntable(parts[APP_TEMPLATE])
    shutil.rmtree(config.data_dir, ignore_errors=True)
    if not args.no_app:
        make_app_screenshot()  # after the thumbnails, so the app shows its "Bodies" gallery
    return 0


if __name__ == "__main__":
    sys.exit(main())

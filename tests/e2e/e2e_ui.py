"""Shared pieces of the browser tests: constants, the allow-list of console errors and
:class:`AppPage`, a page object with the UI steps (imported by conftest.py and the tests)."""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
STAGES = ("validate", "landmarks", "stylize", "fusion", "export")
TEMPLATES = ("default", "superhero", "casual")
STARTUP_TIMEOUT_S = 120
GENERATE_TIMEOUT_MS = 120_000  # one generation takes ~3-6 s on 2 cores; leave room for load

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # software WebGL, so the Model3D viewer (Babylon.js) renders without a GPU
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]

# Console errors that do not matter, each with the reason. Everything else fails the test.
BENIGN_CONSOLE_ERRORS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "Babylon.js WebGPU probe",
        re.compile(r"BJS - .*WebGPU", re.I),
        "the Model3D viewer (Babylon.js) tries WebGPU first; headless Chromium has no WebGPU "
        "adapter, so Babylon logs this error and falls back to WebGL2 (the pixel checks then "
        "verify that WebGL really draws)",
    ),
    (
        "favicon",
        re.compile(r"favicon", re.I),
        "a missing favicon does not affect the app",
    ),
    (
        "third-party resource blocked",
        re.compile(r"^Failed to load resource: net::ERR_"),
        "web fonts / CDNs are unreachable in an offline sandbox; benign only when the failed "
        "URL is NOT the app's own origin (checked in AppPage.unexpected_console_errors)",
    ),
]


@dataclass
class CanvasStats:
    """Pixel statistics of the 3D viewer's canvas, without the label and buttons on top."""

    image: np.ndarray
    background: tuple[int, int, int]
    foreground_share: float  # pixels clearly unlike the background colour
    std: float  # colour standard deviation over the whole canvas
    colours: int  # distinct colours (quantised to 32 levels per channel)

    @property
    def drawn(self) -> bool:
        return self.foreground_share > 0.03 and self.std > 8 and self.colours > 40


class AppPage:
    """The Toonforge UI as a user sees it. Selectors rely on app.py's elem_ids."""

    def __init__(self, page, name: str, artifacts: Path, origin: str) -> None:
        self.page = page
        self.name = name
        self.artifacts = artifacts
        self.origin = origin
        self.console_errors: list[tuple[str, str]] = []  # (text, url)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append((f"pageerror: {exc}", "")))

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, (message.location or {}).get("url", "")))

    # --- steps -------------------------------------------------------------------------
    def upload(self, photo: Path) -> None:
        self.page.locator("#photo input[type=file]").set_input_files(str(photo))
        self.page.locator("#photo img").first.wait_for(state="visible", timeout=30_000)

    def choose_template(self, name: str) -> None:
        radio = self.page.locator(f"#template input[type=radio][value='{name}']")
        radio.check()
        assert radio.is_checked()

    def generate(self) -> None:
        self.page.locator("#generate").click()

    def wait_for_result(self, template: str, timeout: float = GENERATE_TIMEOUT_MS) -> None:
        """Until the quality report names ``template`` and no output shows progress."""
        self.page.wait_for_function(
            """(template) => {
                const q = document.querySelector('#quality');
                if (!q || !q.innerText.includes('Quality') ||
                    !q.innerText.includes('template ' + template)) return false;
                const busy = ['#stylized', '#preview', '#viewer', '#downloads', '#quality', '#timings',
                              '#print-preview', '#one-colour', '#palette', '#threemf']
                    .map(s => document.querySelector(s + ' [data-testid=status-tracker]'))
                    .some(t => t && !t.classList.contains('hide'));
                return !busy;
            }""",
            arg=template,
            timeout=timeout,
        )

    # --- reading results ---------------------------------------------------------------
    def quality_text(self) -> str:
        return self.page.locator("#quality").inner_text()

    def timings(self) -> dict[str, float]:
        """Stage -> ms, read from the timing table's cells."""
        table = self.page.locator("#timings")
        out: dict[str, float] = {}
        for row in range(table.locator("[role=row][data-index]").count()):
            stage = table.locator(f"[data-testid=cell-{row}-0]").inner_text().strip()
            out[stage] = float(table.locator(f"[data-testid=cell-{row}-1]").inner_text().strip())
        return out

    def chart_bars(self) -> dict[str, float]:
        """Stage -> ms, read from the bar chart's accessible labels ("stage: x; ms: y")."""
        labels = self.page.locator("#timing-chart [aria-label^='stage: ']").evaluate_all(
            "els => els.map(e => e.getAttribute('aria-label'))"
        )
        bars = {}
        for label in labels:
            m = re.fullmatch(r"stage: (\w+); ms: ([\d.,]+)", label)
            assert m, f"unexpected bar label {label!r}"
            bars[m.group(1)] = float(m.group(2).replace(",", ""))
        return bars

    def image_loaded(self, elem_id: str) -> tuple[int, int]:
        """Natural size of the picture shown in an output image (waits until it has loaded)."""
        img = self.page.locator(f"#{elem_id} img").first
        img.wait_for(state="visible", timeout=30_000)
        self.page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
        )
        return tuple(img.evaluate("el => [el.naturalWidth, el.naturalHeight]"))

    def canvas_stats(self, viewer: str = "viewer") -> CanvasStats:
        """Of the 3D viewer with elem_id ``viewer`` (the textured one unless told)."""
        canvas = self.page.locator(f"#{viewer} canvas")
        png = canvas.screenshot(animations="disabled")
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        inner = image[44:].astype(np.int16)  # the block label and icon buttons sit on top
        border = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
        values, counts = np.unique(border, axis=0, return_counts=True)
        background = values[counts.argmax()]
        differs = np.abs(inner - background).max(axis=-1) > 24
        colours = len(np.unique((inner // 8).reshape(-1, 3), axis=0))
        return CanvasStats(
            image=image,
            background=tuple(int(v) for v in background),
            foreground_share=float(differs.mean()),
            std=float(inner.std()),
            colours=colours,
        )

    def wait_for_drawn_canvas(
        self, differs_from: np.ndarray | None = None, timeout_s: float = 45, viewer: str = "viewer"
    ):
        """Poll the viewer until its canvas shows a model (and, if given, a new picture)."""
        self.page.locator(f"#{viewer} canvas").wait_for(state="visible", timeout=timeout_s * 1000)
        deadline = time.monotonic() + timeout_s
        while True:
            stats = self.canvas_stats(viewer)
            changed = differs_from is None or (
                differs_from.shape != stats.image.shape
                or np.abs(differs_from.astype(np.int16) - stats.image).mean() > 1.0
            )
            if stats.drawn and changed:
                return stats
            if time.monotonic() > deadline:
                self.shot(f"{viewer}-not-drawn")
                raise AssertionError(
                    f"3D viewer canvas not drawn (changed={changed}): share of non-background "
                    f"pixels {stats.foreground_share:.3f}, std {stats.std:.1f}, "
                    f"{stats.colours} colours, background {stats.background}"
                )
            self.page.wait_for_timeout(500)

    def choose_template_picture(self, label: str) -> None:
        """Click the body picture captioned ``label`` in the Bodies gallery."""
        self.page.locator(f"#template-pictures img[alt='{label}']").click()

    def checked_template(self) -> str | None:
        return self.page.locator("#template input[type=radio]:checked").get_attribute("value")

    def set_colors(self, count: int) -> None:
        """Type ``count`` into the Filament colours slider's number box."""
        box = self.page.locator("#colors input[type=number]")
        box.fill(str(count))
        box.press("Enter")

    def swatches(self) -> list[tuple[str, str, str]]:
        """The palette swatches as (hex text, chip's CSS background colour, share text)."""
        return self.page.locator("#palette .swatch").evaluate_all(
            """els => els.map(e => [e.querySelector('code').innerText.trim(),
                                 getComputedStyle(e.querySelector('.chip')).backgroundColor,
                                 e.querySelector('small').innerText.trim()])"""
        )

    def download_links(self, elem_id: str = "downloads") -> dict[str, str]:
        """File name -> href of a file output's links (the GLB/STL Downloads unless told)."""
        links = self.page.locator(f"#{elem_id} a[data-testid=download-link]")
        return {
            links.nth(i).get_attribute("download"): links.nth(i).get_attribute("href")
            for i in range(links.count())
        }

    def toast_texts(self) -> list[str]:
        return self.page.locator("[data-testid=toast-text]").all_inner_texts()

    # --- bookkeeping -------------------------------------------------------------------
    def shot(self, label: str, full_page: bool = True) -> Path:
        path = self.artifacts / f"{self.name}-{label}.png"
        # finite CSS/Web animations (toasts flying in) jump to their end state
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    def unexpected_console_errors(self) -> list[str]:
        bad = []
        for text, url in self.console_errors:
            matched = next(
                (name for name, pattern, _ in BENIGN_CONSOLE_ERRORS if pattern.search(text + " " + url)),
                None,
            )
            if matched == "third-party resource blocked" and url.startswith(self.origin):
                matched = None  # the app's own resources must load
            if matched is None:
                bad.append(f"{text} ({url})" if url else text)
        return bad

    def assert_no_console_errors(self) -> None:
        bad = self.unexpected_console_errors()
        assert not bad, "console errors in the browser:\n" + "\n".join(bad)



"""6. The colour print in the browser: the Filament colours control, the user's own filaments,
the palette swatches, the colour print preview and the 3MF download (issue 11)."""

from __future__ import annotations

import io
import re
import zipfile

from .e2e_ui import EXAMPLES

MODEL_PART = "3D/3dmodel.model"
MY_FILAMENTS = ("#ffffff", "#1a1a1a", "#e8b896")  # the first three starter pickers


def _css_hex(rgb: str) -> str:
    """ "rgb(205, 170, 146)" -> "#cdaa92"."""
    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _check_swatches(app, count: int) -> list[str]:
    """The swatches: ``count`` of them, each chip painted in the colour its text names, shares
    adding up to about 100 %; returns their hex values."""
    swatches = app.swatches()
    assert len(swatches) == count, swatches
    for hex_text, background, _share in swatches:
        assert re.fullmatch(r"#[0-9a-f]{6}", hex_text), hex_text
        assert _css_hex(background) == hex_text, (hex_text, background)
    total = sum(int(share.rstrip("%")) for *_, share in swatches)
    assert abs(total - 100) <= count, swatches  # each share is rounded to a whole percent
    return [hex_text for hex_text, *_ in swatches]


def _wait_for_toast(app, text: str) -> None:
    app.page.locator("[data-testid=toast-text]", has_text=text).first.wait_for(
        state="visible", timeout=30_000
    )


def _download_3mf(app, artifacts) -> bytes:
    links = app.download_links("threemf")
    assert list(links) == ["figurine.3mf"], links
    with app.page.expect_download() as info:
        app.page.locator("#threemf a[download='figurine.3mf']").click()
    download = info.value
    assert download.failure() is None and download.suggested_filename == "figurine.3mf"
    path = artifacts / f"{app.name}-figurine.3mf"
    download.save_as(path)
    return path.read_bytes()


def _declared_colours(threemf: bytes) -> list[str]:
    """The base-material colours of a 3MF, "#rrggbb" lower case, in file order."""
    with zipfile.ZipFile(io.BytesIO(threemf)) as archive:
        assert MODEL_PART in archive.namelist(), archive.namelist()
        model = archive.read(MODEL_PART).decode("utf-8")
    assert 'unit="millimeter"' in model and "<triangle " in model
    return [c.lower()[:7] for c in re.findall(r'displaycolor="(#[0-9A-Fa-f]{6,8})"', model)]


def test_filament_colours_palette_and_3mf_download(open_app, artifacts):
    app = open_app("desktop")
    page = app.page
    slider = page.locator("#colors input[type=number]")
    assert slider.input_value() == "4"  # the default
    assert page.locator("#filament-1").is_hidden()  # pickers only for "Use my filaments"

    # no photo yet, and then a count out of range: each says what is wrong, nothing is made
    app.generate()
    _wait_for_toast(app, "Upload a photo")
    app.upload(EXAMPLES / "astronaut.jpg")
    app.set_colors(12)
    app.generate()
    _wait_for_toast(app, "Filament colours must be from 1 to 8; got 12.")
    app.shot("colours-out-of-range", full_page=False)
    assert page.locator("#print-preview img").count() == 0 and not app.swatches()
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()

    app.set_colors(2)
    app.generate()
    app.wait_for_result("default")
    assert min(app.image_loaded("print-preview")) >= 128
    colours = _check_swatches(app, 2)
    app.page.locator("#palette").scroll_into_view_if_needed()
    app.shot("two-filaments")

    # the file a user downloads is a 3MF (a zip with its model part) in the swatches' colours
    assert _declared_colours(_download_3mf(app, artifacts)) == colours
    # the GLB and STL downloads stay as they were
    assert set(app.download_links()) == {"figurine.glb", "figurine.stl"}
    app.assert_no_console_errors()


def test_my_filaments_map_the_figurine_to_the_picked_colours(open_app, artifacts):
    app = open_app("desktop")
    page = app.page
    app.upload(EXAMPLES / "astronaut_closeup.jpg")
    page.locator("#my-filaments input[type=checkbox]").check()
    app.set_colors(3)
    # one picker per filament colour
    page.locator("#filament-3").wait_for(state="visible", timeout=10_000)
    page.locator("#filament-4").wait_for(state="hidden", timeout=10_000)
    for n in range(1, 9):
        assert page.locator(f"#filament-{n}").is_visible() == (n <= 3), n
    app.shot("my-filaments", full_page=False)
    app.generate()
    app.wait_for_result("default")
    used = _check_swatches(app, len(app.swatches()))
    assert used and set(used) <= set(MY_FILAMENTS), used
    assert set(_declared_colours(_download_3mf(app, artifacts))) <= set(MY_FILAMENTS)

    # unticked again: the pickers go and the figurine's own colours come back
    page.locator("#my-filaments input[type=checkbox]").uncheck()
    page.locator("#filament-1").wait_for(state="hidden", timeout=10_000)
    app.set_colors(1)
    app.generate()
    page.wait_for_function(
        "() => document.querySelectorAll('#palette .swatch').length === 1", timeout=120_000
    )
    app.wait_for_result("default")
    _check_swatches(app, 1)
    app.assert_no_console_errors()

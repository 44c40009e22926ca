"""1. The page loads cleanly and shows every control."""

from __future__ import annotations

from .e2e_ui import EXAMPLES, ROOT, TEMPLATES


def test_page_loads_with_all_controls(open_app):
    app = open_app("desktop")
    page = app.page
    page.wait_for_load_state("load")  # not "networkidle": Gradio keeps a heartbeat stream open

    # photo upload: a file input for images, plus the upload / webcam / clipboard sources
    file_input = page.locator("#photo input[type=file]")
    assert file_input.count() == 1
    assert "image" in (file_input.get_attribute("accept") or "")
    for source in ("Upload file", "Capture from camera", "Paste from clipboard"):
        assert page.locator(f"#photo button[aria-label='{source}']").count() == 1, source

    # body template radio: default / superhero / casual, default selected
    values = page.locator("#template input[type=radio]").evaluate_all("els => els.map(e => e.value)")
    assert sorted(values) == sorted(TEMPLATES)
    assert page.locator("#template input[value='default']").is_checked()
    for label in ("Default", "Superhero", "Casual"):
        assert page.locator("#template").get_by_text(label, exact=True).is_visible()

    # the "Bodies" gallery: one picture per template, from assets/templates/<name>.png
    # (made by tools/make_readme_media.py)
    for name in TEMPLATES:
        assert (ROOT / "assets" / "templates" / f"{name}.png").is_file(), name
    bodies = page.locator("#template-pictures img")
    assert bodies.count() == len(TEMPLATES)
    bodies.evaluate_all("els => Promise.all(els.map(el => el.decode()))")

    # style radio, one option selected
    styles = page.locator("#style input[type=radio]")
    assert styles.count() >= 1
    assert page.locator("#style input[type=radio]:checked").count() == 1

    # the colour print: Filament colours (default 4), "Use my filaments", pickers hidden until then
    assert page.locator("#colors input[type=number]").input_value() == "4"
    assert not page.locator("#my-filaments input[type=checkbox]").is_checked()
    assert page.locator("#filament-1").is_hidden()

    # the Generate button
    button = page.locator("#generate")
    assert button.is_visible() and button.is_enabled()
    assert button.inner_text().strip() == "Generate"

    # the example photos: one thumbnail per file in assets/examples, each one loads
    examples = page.locator(".block").filter(has=page.get_by_text("Example photos", exact=True))
    thumbs = examples.locator("button.gallery-item")
    assert thumbs.count() == len(list(EXAMPLES.glob("*.jpg")))
    thumbs.locator("img").evaluate_all(
        """els => Promise.all(els.map(el => el.decode()))"""
    )  # rejects (fails the test) if any thumbnail does not load

    # the output panels are there, empty
    for elem_id in (
        "stylized",
        "preview",
        "viewer",
        "downloads",
        "quality",
        "timings",
        "timing-chart",
        "print-preview",
        "one-colour",
        "palette",
        "threemf",
    ):
        assert page.locator(f"#{elem_id}").count() == 1, elem_id
    app.shot("loaded")

    # clicking an example fills the photo input
    thumbs.first.click()
    page.locator("#photo img").first.wait_for(state="visible")
    app.shot("example-picked", full_page=False)

    app.assert_no_console_errors()

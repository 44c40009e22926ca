"""4. A photo without a face gives a readable error, and the page stays usable."""

from __future__ import annotations

from .e2e_ui import EXAMPLES


def test_no_face_error_then_recovers(open_app):
    app = open_app("desktop")
    page = app.page
    app.upload(EXAMPLES / "cat_no_face.jpg")
    app.generate()

    # Gradio's error toast, with the pipeline's own message
    toast = page.locator("[data-testid=toast-body].error")
    toast.first.wait_for(state="visible", timeout=60_000)
    # Playwright's "visible" ignores opacity: wait until the toast has flown in and is opaque
    page.wait_for_function(
        """() => {
            const body = document.querySelector('[data-testid=toast-body].error');
            const wrap = document.querySelector('.toast-wrap');
            const moving = wrap && wrap.getAnimations({subtree: true})
                .filter(a => !a.effect.target.classList.contains('timer'));  // the countdown bar
            return body && wrap && moving.length === 0 &&
                getComputedStyle(body).opacity === '1';
        }"""
    )
    text = page.locator("[data-testid=toast-text]").first
    assert text.inner_text().startswith("No face found"), text.inner_text()
    assert text.is_visible()
    box = text.bounding_box()
    viewport = page.viewport_size
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    app.shot("no-face-error", full_page=False)

    # no half-finished outputs
    assert page.locator("#stylized img").count() == 0
    assert page.locator("#viewer canvas").count() == 0
    assert "Quality" not in app.quality_text()

    # the user closes the toast, picks a face photo and it works
    toast.locator("[data-testid=toast-close]").first.click()
    toast.first.wait_for(state="hidden")
    page.locator("#photo button[aria-label='Remove Image']").click()
    page.locator("#photo img").first.wait_for(state="detached")
    app.upload(EXAMPLES / "astronaut_closeup.jpg")
    app.generate()
    app.wait_for_result("default")
    assert min(app.image_loaded("stylized")) >= 128
    app.wait_for_drawn_canvas()
    assert page.locator("[data-testid=toast-body].error").count() == 0
    app.shot("after-recovery")
    app.assert_no_console_errors()

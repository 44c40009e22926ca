"""5. On a phone-sized screen every control can be reached and nothing scrolls sideways."""

from __future__ import annotations

from .e2e_ui import EXAMPLES

PHONE = dict(
    viewport={"width": 390, "height": 844},
    device_scale_factor=1,  # layout is the same as at 3x; 1x keeps SwiftShader fast
    is_mobile=True,
    has_touch=True,
)


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width <= inner + 1, f"page scrolls sideways: scrollWidth {width} > innerWidth {inner}"


def _within_width(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not rendered"
    assert box["x"] >= -1 and box["x"] + box["width"] <= 391, f"{selector} overflows: {box}"


def test_phone_layout(open_app):
    app = open_app("phone", **PHONE)
    page = app.page
    _no_sideways_scroll(page)
    for selector in ("#photo", "#template", "#style", "#colors", "#my-filaments", "#generate"):
        _within_width(page, selector)

    app.upload(EXAMPLES / "astronaut_closeup.jpg")
    page.locator("#template").scroll_into_view_if_needed()
    page.locator("#template input[value='superhero']").tap()
    assert page.locator("#template input[value='superhero']").is_checked()

    # Generate: below the fold on a phone, reachable by scrolling, then tapped
    button = page.locator("#generate")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= 844, f"Generate not on screen: {box}"
    app.shot("before-generate", full_page=False)
    button.tap()
    app.wait_for_result("superhero")

    # the outputs: each one scrolled to is on screen and fits the width
    for selector in (
        "#stylized",
        "#preview",
        "#print-preview",
        "#viewer",
        "#one-colour",
        "#palette",
        "#downloads",
        "#threemf",
        "#quality",
        "#timings",
    ):
        page.locator(selector).scroll_into_view_if_needed()
        assert page.locator(selector).is_visible(), selector
        _within_width(page, selector)
    page.locator("#viewer").scroll_into_view_if_needed()
    app.wait_for_drawn_canvas()
    app.shot("viewer", full_page=False)
    assert app.image_loaded("stylized")
    _no_sideways_scroll(page)
    app.shot("result")
    app.assert_no_console_errors()

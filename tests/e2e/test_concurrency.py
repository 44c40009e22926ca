"""6. Two people (two browser sessions) generating at the same time both get their figurine."""

from __future__ import annotations

from .e2e_ui import EXAMPLES


def test_two_tabs_generate_at_once(open_app):
    first = open_app("tab1")
    second = open_app("tab2")
    first.upload(EXAMPLES / "astronaut.jpg")
    first.choose_template("superhero")
    second.upload(EXAMPLES / "astronaut_closeup.jpg")
    second.choose_template("casual")

    first.generate()
    second.generate()  # clicked while the first one is still running
    assert "Quality" not in first.quality_text() + second.quality_text(), "not concurrent: too slow a click"

    # both finish, each with its own result (no cross-talk between the sessions)
    first.wait_for_result("superhero")
    second.wait_for_result("casual")
    for app in (first, second):
        assert min(app.image_loaded("stylized")) >= 128
        app.wait_for_drawn_canvas()
        assert len(app.download_links()) == 2
        app.shot("result")
    assert first.download_links()["figurine.glb"] != second.download_links()["figurine.glb"]
    assert "template superhero" in first.quality_text()
    assert "template casual" in second.quality_text()
    first.assert_no_console_errors()
    second.assert_no_console_errors()

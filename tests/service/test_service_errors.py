"""service/errors.py: every pipeline error class has one HTTP status and a stable code."""

import inspect

import pytest

import pipeline.errors as pe
from service.errors import HTTP_STATUS, http_status, retry_after_s
from service.jobs import QueueFullError

EXPECTED = {
    "not_an_image": 400,
    "truncated_image": 400,
    "no_face": 400,
    "face_too_small": 400,
    "image_too_small": 400,
    "bad_aspect_ratio": 400,
    "bad_parameter": 400,
    "image_too_large": 413,
    "unsupported_format": 415,
    "unknown_template": 422,
    "unknown_style": 422,
    "unknown_backend": 422,
    "busy": 503,
    "backend_unavailable": 503,
}
PIPELINE_ERRORS = [
    cls for _, cls in inspect.getmembers(pe, inspect.isclass) if issubclass(cls, pe.ToonforgeError)
]


@pytest.mark.parametrize("cls", PIPELINE_ERRORS, ids=lambda c: c.__name__)
def test_every_pipeline_error_maps_to_a_client_or_retryable_status(cls):
    status = http_status(cls("x"))
    assert status in (400, 413, 415, 422, 503)
    if cls.code in EXPECTED:
        assert status == EXPECTED[cls.code]
    # Only "come back later" errors may be 5xx, and they say when.
    assert (status >= 500) == (retry_after_s(cls("x")) is not None)


def test_issue_codes_are_all_covered():
    assert set(EXPECTED) <= {cls.code for cls in PIPELINE_ERRORS}


def test_subclasses_inherit_their_parents_status():
    class OddInput(pe.InputError):
        code = "odd"

    assert http_status(OddInput("x")) == 400
    assert pe.ToonforgeError in HTTP_STATUS


def test_queue_full_carries_its_own_retry_after():
    assert http_status(QueueFullError("busy", 17)) == 503
    assert retry_after_s(QueueFullError("busy", 17)) == 17


def test_non_toonforge_errors_are_refused():
    with pytest.raises(TypeError):
        http_status(ValueError("x"))  # type: ignore[arg-type]

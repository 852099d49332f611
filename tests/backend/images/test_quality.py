"""The triage quality check: real HAM10000 photos pass; blurred, dark, blown-out and tiny ones do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from backend.images.quality import MIN_LAPLACIAN_VARIANCE, assess

SMALL_SAMPLE = 200  # every 50th of the 10,015 images_200x150 keeps the test well under a second


@pytest.fixture(scope="module")
def full_size(shared_dir: Path) -> list[Image.Image]:
    paths = sorted((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg"))
    assert paths
    return [Image.open(path).convert("RGB") for path in paths]


def test_real_dermoscopy_photos_pass(full_size: list[Image.Image], shared_dir: Path):
    small = sorted((shared_dir / "data" / "ham10000" / "images_200x150").glob("*.jpg"))[::50]
    assert len(small) >= SMALL_SAMPLE
    for image in full_size + [Image.open(path) for path in small]:
        report = assess(image)
        assert report.ok, (image.size, report)
        assert report.reasons == []


def test_a_heavily_blurred_copy_fails_as_blurred(full_size: list[Image.Image]):
    for image in full_size[:10]:
        sharp, blurred = assess(image), assess(image.filter(ImageFilter.GaussianBlur(8)))
        assert not blurred.ok and blurred.reasons[0].startswith("blurred")
        assert blurred.laplacian_variance < MIN_LAPLACIAN_VARIANCE < sharp.laplacian_variance


def test_a_nearly_black_photo_fails_as_too_dark(full_size: list[Image.Image]):
    dark = full_size[0].point(lambda value: value // 20)  # lens half covered: texture kept, light gone
    report = assess(dark)
    assert not report.ok and any(reason.startswith("too dark") for reason in report.reasons)
    assert report.dark_fraction > 0.9


def test_a_blown_out_photo_fails_as_too_bright(full_size: list[Image.Image]):
    report = assess(full_size[0].point(lambda value: min(255, value * 3)))
    assert not report.ok and any(reason.startswith("too bright") for reason in report.reasons)


def test_a_low_resolution_photo_fails_whatever_else(full_size: list[Image.Image]):
    report = assess(full_size[0].resize((120, 90)))
    assert not report.ok and report.short_side == 90
    assert any(reason.startswith("low resolution") for reason in report.reasons)

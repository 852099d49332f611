"""The hostile-upload corpus: every kind of upload the platform was probed with, built in code (no binary
fixtures), each with the answer the API must give. Used by the API-level test
(`tests/backend/cases/test_hostile_corpus.py`); `test_intake.py` checks the same kinds unit by unit.

Accepted entries carry sentinels (a maker string, GPS coordinates, a PNG text chunk) that must not survive
intake, and none of an upload's bytes may be found in clear where the platform stores data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.backend.images.test_intake import a_zip, encode, photo, png_declaring

SENTINEL = "DermaLinkSentinel-7f3a"  # written into metadata; must never be stored
GPS_LATITUDE = (48.0, 51.0, 24.0)


@dataclass(frozen=True)
class Upload:
    name: str
    build: Callable[[], bytes]
    status: int
    type: str | None  # the error type; None when accepted


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = SENTINEL  # Make
    exif[0x0112] = 6  # Orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LATITUDE, "W", (0.0, 7.0, 0.0)
    return exif


def jpeg_with_gps() -> bytes:
    return encode(photo((320, 240)), "JPEG", quality=92, exif=_exif_with_gps())


def heic_with_gps() -> bytes:
    return encode(photo((256, 192)), "HEIF", quality=90, exif=_exif_with_gps().tobytes())


def png_with_text_and_exif() -> bytes:
    info = PngInfo()
    info.add_text("Comment", SENTINEL)
    return encode(photo((320, 240)), "PNG", pnginfo=info, exif=_exif_with_gps())


def mpo() -> bytes:
    return encode(photo((320, 240)), "MPO", save_all=True, append_images=[photo((160, 120))])


def _frames() -> list[Image.Image]:
    return [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


CORPUS = [
    # accepted: stored re-encoded, without metadata
    Upload("jpeg with exif gps", jpeg_with_gps, 201, None),
    Upload("heic from a phone with gps", heic_with_gps, 201, None),
    Upload("png with text chunk and exif", png_with_text_and_exif, 201, None),
    Upload("mpo (two pictures)", mpo, 201, None),
    # empty and truncated
    Upload("zero bytes", lambda: b"", 422, "empty"),
    Upload("truncated jpeg", lambda: _truncated(encode(photo((400, 300)), "JPEG")), 422, "truncated"),
    Upload("truncated png", lambda: encode(photo((400, 300)), "PNG")[:-20], 422, "truncated"),
    # not images
    Upload("text", lambda: b"hello, I am not an image\n" * 20, 415, "not_an_image"),
    Upload("html", lambda: b"<!doctype html><script>alert(1)</script>" * 5, 415, "not_an_image"),
    Upload("pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF" * 3, 415, "not_an_image"),
    Upload("zip", a_zip, 415, "not_an_image"),
    Upload("jpeg magic then nothing", lambda: b"\xff\xd8\xff" + b"\x00" * 200, 415, "not_an_image"),
    # polyglots: a valid image with something else behind it
    Upload("polyglot jpeg+zip", lambda: encode(photo(), "JPEG") + a_zip(), 422, "trailing_data"),
    Upload(
        "polyglot png+html",
        lambda: encode(photo(), "PNG") + b"<html><script>fetch('//evil')</script></html>",
        422,
        "trailing_data",
    ),
    Upload("polyglot heic+zip", lambda: encode(photo(), "HEIF") + a_zip(), 422, "trailing_data"),
    # decompression bombs and huge dimensions, refused before decoding
    Upload("png declaring 50000x50000", lambda: png_declaring(50_000, 50_000), 422, "decompression_bomb"),
    Upload("png declaring 9000x5000", lambda: png_declaring(9_000, 5_000), 422, "decompression_bomb"),
    Upload(
        "real 45-megapixel black png (few KB)",
        lambda: encode(Image.new("L", (9_000, 5_000)), "PNG"),
        422,
        "decompression_bomb",
    ),
    # animated and other formats
    Upload(
        "animated png",
        lambda: encode(_frames()[0], "PNG", save_all=True, append_images=_frames()[1:]),
        422,
        "animated",
    ),
    Upload(
        "heic image sequence",
        lambda: encode(_frames()[0], "HEIF", save_all=True, append_images=_frames()[1:]),
        422,
        "animated",
    ),
    Upload(
        "animated gif",
        lambda: encode(_frames()[0], "GIF", save_all=True, append_images=_frames()[1:]),
        415,
        "unsupported_format",
    ),
    Upload("webp", lambda: encode(photo(), "WEBP"), 415, "unsupported_format"),
    Upload("tiff", lambda: encode(photo(), "TIFF"), 415, "unsupported_format"),
    Upload("too small", lambda: encode(photo((40, 30)), "PNG"), 422, "too_small"),
]

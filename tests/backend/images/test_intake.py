"""Image intake against a hostile corpus built in the test (no binary fixtures), and real HAM10000 photos."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageFile
from PIL.PngImagePlugin import PngInfo

from backend.core.errors import DermaLinkError
from backend.images.intake import ImageRejected, SanitizedImage, sanitize

MAX_BYTES = 5_000_000
MAX_PIXELS = 40_000_000
LIMITS = {"max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS}
RED, BLUE = (220, 20, 20), (20, 20, 220)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def photo(size: tuple[int, int] = (160, 120), mode: str = "RGB") -> Image.Image:
    """A blue image with a red top-left corner, to follow orientation and colour through intake."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 4, size[1] // 4))
    return image.convert(mode)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width``×``height`` RGB pixels; its pixel data is one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 1000))
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def a_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return out.getvalue()


def rejected(data: bytes, **limits: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        sanitize(data, **{**LIMITS, **limits})
    return caught.value


def assert_no_metadata(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as out:
        assert out.format == "JPEG" and out.mode == "RGB"
        assert not out.getexif()
        assert not {"exif", "icc_profile", "comment", "xmp", "photoshop"} & set(out.info)
        assert [name for name, _ in out.applist] in ([], ["APP0"])  # at most the JFIF header
    for marker in (b"Exif", b"\xff\xe1", b"GPS", b"http://ns.adobe.com", b"secret"):
        assert marker not in data


# --- accepted, and what comes out -------------------------------------------------------------------


def test_jpeg_is_accepted_and_reencoded_with_a_hash_of_the_output():
    result = sanitize(encode(photo(), "JPEG", quality=90), **LIMITS)
    assert isinstance(result, SanitizedImage)
    assert (result.media_type, result.original_format, result.width, result.height) == (
        "image/jpeg",
        "JPEG",
        160,
        120,
    )
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    assert_no_metadata(result.data)
    with pytest.raises(AttributeError):
        result.width = 1  # type: ignore[misc]  # frozen


def test_the_encoding_through_an_in_memory_file_is_the_plain_encoding(monkeypatch: pytest.MonkeyPatch):
    """The re-encode writes to an anonymous file (so Pillow lets go of the GIL): the bytes are exactly
    those of an encoding into memory, which is what runs where there is no such file."""
    upload = encode(photo(), "JPEG", quality=90)
    through_a_file = sanitize(upload, **LIMITS).data
    monkeypatch.delattr("os.memfd_create", raising=False)
    assert sanitize(upload, **LIMITS).data == through_a_file


def test_gps_exif_is_gone_orientation_applied_and_pixels_survive():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90° clockwise
    exif[0x010F] = "secret-maker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    original = encode(photo((160, 120)), "JPEG", quality=95, exif=exif, comment=b"secret comment")
    with Image.open(io.BytesIO(original)) as check:  # the fixture really carries GPS
        assert check.getexif().get_ifd(0x8825)[2] == (48.0, 51.0, 24.0)
    result = sanitize(original, **LIMITS)
    assert_no_metadata(result.data)
    assert (result.width, result.height) == (120, 160)  # turned upright
    with Image.open(io.BytesIO(result.data)) as out:
        # The red corner, stored top-left, is top-right once turned clockwise.
        assert _close(out.getpixel((out.width - 5, 5)), RED)
        assert _close(out.getpixel((5, 5)), BLUE)


def test_png_text_and_exif_chunks_are_stripped():
    info = PngInfo()
    info.add_text("Comment", "secret GPS 48.85N")
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)
    result = sanitize(encode(photo(), "PNG", pnginfo=info, exif=exif), **LIMITS)
    assert result.original_format == "PNG"
    assert_no_metadata(result.data)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (100, 100), (0, 255, 255, 0))  # pure red ink
    result = sanitize(encode(cmyk, "JPEG", quality=95), **LIMITS)
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.mode == "RGB" and _close(out.getpixel((50, 50)), (255, 0, 0))


def test_alpha_is_flattened_on_white():
    rgba = photo(mode="RGBA")
    rgba.paste((0, 0, 0, 0), (80, 60, 160, 120))  # fully transparent quarter
    result = sanitize(encode(rgba, "PNG"), **LIMITS)
    with Image.open(io.BytesIO(result.data)) as out:
        assert _close(out.getpixel((150, 110)), (255, 255, 255)) and _close(out.getpixel((5, 5)), RED)


def test_palette_with_transparency_and_16_bit_gray_are_converted():
    palette = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    transparent = palette.getpixel((5, 5))
    out_palette = sanitize(encode(palette, "PNG", transparency=transparent), **LIMITS)
    with Image.open(io.BytesIO(out_palette.data)) as out:
        assert _close(out.getpixel((5, 5)), (255, 255, 255)) and _close(out.getpixel((150, 110)), BLUE)

    gray16 = Image.new("I;16", (100, 100), 32768)  # mid-gray on 16 bits, not white after conversion
    out_gray = sanitize(encode(gray16, "PNG"), **LIMITS)
    with Image.open(io.BytesIO(out_gray.data)) as out:
        assert _close(out.getpixel((50, 50)), (127, 127, 127))


def test_an_embedded_icc_profile_is_converted_then_dropped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = sanitize(encode(photo(), "JPEG", quality=95, icc_profile=srgb), **LIMITS)
    assert_no_metadata(result.data)
    with Image.open(io.BytesIO(result.data)) as out:
        assert _close(out.getpixel((5, 5)), RED)


def test_heic_from_an_iphone_is_accepted_without_its_gps_and_turned_once():
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)
    heic = encode(photo((128, 96)), "HEIF", quality=90, exif=exif.tobytes())
    with Image.open(io.BytesIO(heic)) as check:  # the fixture really carries GPS
        assert check.getexif().get_ifd(0x8825)[2] == (48.0, 51.0, 24.0)
    result = sanitize(heic, **LIMITS)
    assert (result.original_format, result.width, result.height) == ("HEIF", 96, 128)
    assert_no_metadata(result.data)
    with Image.open(io.BytesIO(result.data)) as out:  # libheif applies the rotation; we must not add another
        assert _close(out.getpixel((out.width - 5, 5)), RED) and _close(out.getpixel((5, 5)), BLUE)


def test_mpo_keeps_the_primary_picture():
    image = photo()
    result = sanitize(encode(image, "MPO", save_all=True, append_images=[image.resize((80, 60))]), **LIMITS)
    assert (result.original_format, result.width, result.height) == ("MPO", 160, 120)


def test_the_format_comes_from_the_content_not_the_name(tmp_path: Path):
    (tmp_path / "lesion.jpg").write_bytes(encode(photo(), "PNG"))
    (tmp_path / "photo.png").write_bytes(b"<html><body>not a photo</body></html>")
    assert sanitize((tmp_path / "lesion.jpg").read_bytes(), **LIMITS).original_format == "PNG"
    assert rejected((tmp_path / "photo.png").read_bytes()).code == "not_an_image"


def test_output_is_itself_acceptable():
    once = sanitize(encode(photo(), "PNG"), **LIMITS)
    twice = sanitize(once.data, **LIMITS)
    assert (twice.width, twice.height, twice.original_format) == (once.width, once.height, "JPEG")


def test_real_ham10000_photos_are_accepted(shared_dir: Path):
    paths = sorted((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg"))
    assert paths
    for path in paths:
        result = sanitize(path.read_bytes(), max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
        assert (result.width, result.height, result.original_format) == (600, 450, "JPEG"), path.name
        assert_no_metadata(result.data)


# --- refused --------------------------------------------------------------------------------------


def test_empty_and_oversized_uploads():
    assert (rejected(b"").code, rejected(b"").status_code) == ("empty", 422)
    big = encode(photo(), "PNG")
    refusal = rejected(big, max_bytes=len(big) - 1)
    assert (refusal.code, refusal.status_code) == ("too_large", 413) and str(len(big)) in refusal.detail


@pytest.mark.parametrize(
    "data",
    [
        b"just some text\n",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        a_zip(),
        b"\xff\xd8\xff" + b"\x00" * 50,  # a JPEG signature and nothing valid behind it
    ],
    ids=["text", "pdf", "html", "zip", "fake-jpeg-magic"],
)
def test_non_images_are_415(data: bytes):
    refusal = rejected(data)
    assert (refusal.code, refusal.status_code) == ("not_an_image", 415)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_other_image_formats_are_named_and_refused(fmt: str):
    refusal = rejected(encode(photo(), fmt))
    assert (refusal.code, refusal.status_code) == ("unsupported_format", 415) and fmt in refusal.detail


def test_crafted_png_bomb_is_refused_from_its_header():
    bomb = png_declaring(50_000, 50_000)  # 2.5 gigapixels in a few hundred bytes
    assert len(bomb) < 1000
    assert rejected(bomb).code == "decompression_bomb"
    # Below Pillow's own global guard, our configured limit still applies before any pixel is decoded.
    refusal = rejected(png_declaring(8000, 6000))
    assert (refusal.code, refusal.status_code) == ("decompression_bomb", 422) and "48000000" in refusal.detail


def test_real_highly_compressible_bomb_is_refused():
    bomb = encode(Image.new("L", (4000, 3000)), "PNG")  # 12 megapixels of black in a few KB
    assert len(bomb) < 50_000
    assert rejected(bomb, max_pixels=10_000_000).code == "decompression_bomb"


def test_truncated_files():
    jpeg = encode(photo((400, 300)), "JPEG", quality=95)
    png = encode(photo((400, 300)), "PNG")
    for data in (jpeg[: len(jpeg) // 2], jpeg[:-2], png[: len(png) - 20]):
        refusal = rejected(data)
        assert (refusal.code, refusal.status_code) == ("truncated", 422)


def test_corrupt_pixel_data_with_intact_structure_is_refused():
    png = bytearray(encode(photo((400, 300)), "PNG"))
    idat = png.index(b"IDAT") + 4
    png[idat + 10 : idat + 40] = b"\xaa" * 30  # CRC and zlib stream broken, chunk layout intact
    assert rejected(bytes(png)).code == "corrupt"


@pytest.mark.parametrize(
    "image_bytes, appended",
    [
        (lambda: encode(photo(), "JPEG"), a_zip()),
        (lambda: encode(photo(), "PNG"), b"<html><script>fetch('//evil')</script></html>"),
        (lambda: encode(photo(), "HEIF"), a_zip()),
        (lambda: encode(photo(), "HEIF"), b"\x00" * 16),  # would read as a box "to the end of the file"
        (lambda: encode(photo(), "MPO", save_all=True, append_images=[photo()]), b"<script>x</script>"),
    ],
    ids=["jpeg+zip", "png+html", "heic+zip", "heic+zeros", "mpo+script"],
)
def test_polyglots_with_trailing_data_are_refused(image_bytes, appended: bytes):
    clean = image_bytes()
    sanitize(clean, **LIMITS)  # the image alone is fine
    refusal = rejected(clean + appended)
    assert (refusal.code, refusal.status_code) == ("trailing_data", 422) and str(
        len(appended)
    ) in refusal.detail


def test_an_exif_thumbnail_end_marker_is_not_the_end_of_the_jpeg():
    thumbnail = encode(photo((32, 24)), "JPEG")  # its own SOI...EOI, carried inside APP1
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x927C] = thumbnail  # maker note: opaque bytes, as cameras store previews
    data = encode(photo(), "JPEG", exif=exif)
    assert thumbnail in data and data.index(b"\xff\xd9") < len(data) - 2
    assert sanitize(data, **LIMITS).width == 160


def test_animated_images_are_refused():
    frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    apng = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    heic_sequence = encode(frames[0], "HEIF", save_all=True, append_images=frames[1:])
    for data in (apng, heic_sequence):
        refusal = rejected(data)
        assert (refusal.code, refusal.status_code) == ("animated", 422)
    assert (
        rejected(encode(frames[0], "GIF", save_all=True, append_images=frames[1:])).code
        == "unsupported_format"
    )


def test_too_small_images_are_refused():
    refusal = rejected(encode(photo((63, 200)), "PNG"))
    assert (refusal.code, refusal.status_code) == ("too_small", 422) and "63" in refusal.detail
    assert sanitize(encode(photo((63, 200)), "PNG"), **LIMITS, min_side=32).width == 63


def test_unreadable_exif_is_ignored_not_fatal():
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x00\x00"  # an IFD claiming 65535 entries
    jpeg = encode(photo(), "JPEG")
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + jpeg[2:]
    with pytest.warns(UserWarning, match="Corrupt EXIF"):
        result = sanitize(data, **LIMITS)
    assert (result.width, result.height) == (160, 120)
    assert_no_metadata(result.data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about what it skips in damaged files
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "HEIF", "MPO"])
def test_random_corruption_is_refused_or_accepted_never_crashes(fmt: str):
    """Flip bytes and cut files at random: every outcome is a clean image or an `ImageRejected`."""
    rng = random.Random(fmt)
    original = (
        encode(photo(), fmt, save_all=True, append_images=[photo()]) if fmt == "MPO" else encode(photo(), fmt)
    )
    outcomes = set()
    for _ in range(100):
        mutated = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.3:
            mutated = mutated[: rng.randrange(len(mutated))]
        try:
            sanitize(bytes(mutated), **LIMITS)
            outcomes.add("accepted")
        except ImageRejected as refusal:
            outcomes.add(refusal.code)
    assert "accepted" in outcomes and len(outcomes) > 2


def test_refusals_render_as_the_projects_error_bodies():
    refusal = rejected(b"")
    assert isinstance(refusal, DermaLinkError) and refusal.type == refusal.code == "empty"
    assert refusal.detail == "The upload is empty (0 bytes)."


def test_partial_decoding_can_never_be_switched_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        sanitize(encode(photo(), "PNG"), **LIMITS)


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))

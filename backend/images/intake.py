"""Safe intake of lesion photos: verify by decoding, refuse hostile input, re-encode without metadata.

Nothing the client says is trusted: the filename and declared content type are ignored and the format
comes from decoding the bytes. An accepted image is re-encoded from its pixels alone, so no EXIF (GPS,
maker notes, thumbnails), XMP, comment or text chunk can survive into storage.

Decisions:

* Accepted formats: JPEG (including MPO, the multi-picture JPEG some phones write; only its primary
  image is kept), PNG, and HEIC/HEIF through ``pillow-heif`` (maintained, BSD-licensed, wheels bundle
  libheif with its security limits on). Any other format, even one Pillow can read, is refused: every
  extra parser is attack surface and the classifier was trained on photographs.
* Output is always baseline JPEG, quality 95, 4:4:4 chroma (no chroma subsampling, so lesion colour
  detail is kept), sRGB without an embedded profile: an embedded ICC profile (e.g. an iPhone's Display
  P3) is converted to sRGB, then dropped. An unreadable profile is ignored and the pixels taken as sRGB.
* Alpha is flattened on white; palette, grayscale, 16-bit and CMYK inputs are converted to 8-bit RGB.
* EXIF orientation is applied to the pixels, so the stored image looks the way the phone showed it.
* Pixel limits are checked from the header, before any pixel data is decoded. Pillow's own
  ``Image.MAX_IMAGE_PIXELS`` is process-global and only a backstop here.
* Refusal codes and HTTP statuses: ``too_large`` → 413; ``not_an_image`` and ``unsupported_format``
  → 415 (the content is not a type we take); everything else → 422 (an image of an accepted type whose
  content cannot be used): ``empty``, ``decompression_bomb``, ``truncated``, ``corrupt``, ``animated``,
  ``too_small``, ``trailing_data``.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from backend.core.errors import DermaLinkError
from backend.images.structure import payload_end

# HEIF thumbnails, depth maps and auxiliary images are never used: don't even parse them.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

ACCEPTED_FORMATS = ("JPEG", "PNG", "HEIF")
# Formats we name in the refusal (a clinician can act on "GIF is not accepted"), opened lazily, never decoded.
RECOGNISED_FORMATS = ("GIF", "WEBP", "BMP", "TIFF")
OUTPUT_MEDIA_TYPE = "image/jpeg"
JPEG_QUALITY = 95
WHITE = (255, 255, 255)

_STATUS_BY_CODE = {
    "too_large": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "empty": 422,
    "decompression_bomb": 422,
    "truncated": 422,
    "corrupt": 422,
    "animated": 422,
    "too_small": 422,
    "trailing_data": 422,
}


class ImageRejected(DermaLinkError):
    """An upload refused with a stable machine ``code`` (also the error body's ``type``) and a human detail."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = self.type = code
        self.status_code = _STATUS_BY_CODE[code]
        super().__init__(detail)


@dataclass(frozen=True)
class SanitizedImage:
    data: bytes
    media_type: str
    width: int
    height: int
    original_format: str
    sha256: str


def sanitize(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = 64) -> SanitizedImage:
    """Verify ``data`` is one acceptable still image and return it re-encoded without metadata.

    Raises `ImageRejected` for anything else. Checks run cheapest first, and all limits are enforced
    before pixel data is decoded.
    """
    return sanitize_with_pixels(data, max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)[0]


def sanitize_with_pixels(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = 64
) -> tuple[SanitizedImage, Image.Image]:
    """`sanitize`, also returning the decoded sRGB pixels that were encoded, so that callers needing them
    (the quality check, the model's input) do not decode the stored JPEG again."""
    decoded = decode_checked(data, max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)
    return encode_sanitized(decoded), decoded.pixels


@dataclass
class DecodedUpload:
    """An accepted upload's sRGB pixels (orientation applied, no metadata), not yet re-encoded."""

    pixels: Image.Image
    original_format: str


def decode_checked(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = 64) -> DecodedUpload:
    """The first half of `sanitize`: every check and the decode (all refusals happen here), so a caller
    can start on the pixels (the model's input) before `encode_sanitized` writes the stored JPEG."""
    _check_size(data, max_bytes)
    with _open(data) as image:
        _check_dimensions(image, max_pixels, min_side)
        _check_still(image)
        _check_structure(data, image.format)
        # The whole file in one read: the decoder then lets go of the GIL once instead of once per 64 KiB
        # block, and each time it wants the GIL back while other threads run Python it can wait for a
        # whole switch interval (5 ms), which made decoding several times slower on a busy server.
        image.decodermaxblock = max(image.decodermaxblock, len(data))
        _decode(image)
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of a possibly huge image
        pixels = _to_srgb(image)
        original_format = image.format
    pixels.info = {}  # nothing that came with the upload can reach the encoder
    return DecodedUpload(pixels, original_format)


def encode_sanitized(decoded: DecodedUpload) -> SanitizedImage:
    """The second half of `sanitize`: the metadata-free JPEG re-encoded from the decoded pixels."""
    pixels = decoded.pixels
    encoded = _encode(pixels)
    return SanitizedImage(
        data=encoded,
        media_type=OUTPUT_MEDIA_TYPE,
        width=pixels.width,
        height=pixels.height,
        original_format=decoded.original_format,
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("empty", "The upload is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"The upload is {len(data)} bytes; the limit is {max_bytes} bytes.")


def _open(data: bytes) -> Image.Image:
    """Open lazily (header only) with the accepted parsers; name a recognised but refused format."""
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", f"The image declares too many pixels ({exc}).") from exc
    except UnidentifiedImageError:
        pass
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("corrupt", f"The image header cannot be read: {exc}.") from exc
    refused = _recognise(data)
    if refused:
        raise ImageRejected(
            "unsupported_format", f"{refused} images are not accepted; send a JPEG, PNG or HEIC photo."
        )
    raise ImageRejected("not_an_image", "The upload is not a readable JPEG, PNG or HEIC image.")


def _recognise(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data), formats=RECOGNISED_FORMATS) as other:
            return other.format
    except Exception:  # noqa: BLE001 - naming the format is best effort; the upload is refused either way
        return None


def _check_dimensions(image: Image.Image, max_pixels: int, min_side: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(
            "decompression_bomb",
            f"The image declares {width}×{height} = {width * height} pixels; the limit is {max_pixels}.",
        )
    if min(width, height) < min_side:
        raise ImageRejected(
            "too_small", f"The image is {width}×{height}; each side must be at least {min_side} pixels."
        )


def _check_still(image: Image.Image) -> None:
    """Refuse animations (APNG, HEIF sequences). An MPO's extra pictures are stills (depth, preview), not frames."""
    if image.format != "MPO" and (getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1):
        raise ImageRejected(
            "animated",
            f"Animated or multi-image {image.format} files are not accepted; send one still photo.",
        )


def _check_structure(data: bytes, image_format: str) -> None:
    """Refuse files that end early or carry anything after the image (polyglots: JPEG+ZIP, PNG+HTML)."""
    end = payload_end(data, image_format)
    if end is None:
        raise ImageRejected(
            "truncated", f"The {image_format} file ends before its end marker; it is truncated or corrupt."
        )
    if end < len(data):
        raise ImageRejected(
            "trailing_data",
            f"{len(data) - end} bytes follow the end of the {image_format} image; such files are refused.",
        )


def _decode(image: Image.Image) -> None:
    """Decode all pixel data; with ``LOAD_TRUNCATED_IMAGES`` off, a partial image raises instead of being padded."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a process-global some library could flip; never decode partially
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for image intake")
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", f"The image declares too many pixels ({exc}).") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("corrupt", f"The {image.format} pixel data cannot be decoded: {exc}.") from exc


def _to_srgb(image: Image.Image) -> Image.Image:
    """8-bit sRGB pixels: deepen 16-bit gray, convert an embedded colour profile, flatten alpha on white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8), "L")
    image = _apply_icc_profile(image)
    if image.mode in ("P", "PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")  # a palette's transparency becomes alpha
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, WHITE)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    return image if image.mode == "RGB" else image.convert("RGB")


def _apply_icc_profile(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=output_mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # unreadable or mismatched profile: take the pixels as sRGB


def _encode(image: Image.Image) -> bytes:
    """Re-encode from the pixels only. Pillow's JPEG encoder writes EXIF, ICC, XMP and other metadata only
    when they are passed to ``save`` (none are), and a comment only from ``info``, which is empty here;
    emptying ``info`` instead of copying the pixels into a fresh image saves two full-size copies."""
    if image.info:
        raise RuntimeError("image info must be empty before encoding")
    if not hasattr(os, "memfd_create"):  # not Linux
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        return out.getvalue()
    # Into an anonymous in-memory file rather than a BytesIO: Pillow's encoder lets go of the GIL only
    # when it writes to a real file descriptor, and holding it would stall the server's other threads
    # (and the inference batcher) for the 2-3 ms an upload takes to encode. Same bytes either way.
    with os.fdopen(os.memfd_create("sanitised.jpg", os.MFD_CLOEXEC), "w+b") as out:
        image.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        out.seek(0)
        return out.read()


def return_freed_memory_to_the_os(threshold: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold`` bytes and more with mmap (glibc), so a decoded image's memory
    goes back to the system when it is freed. By default glibc raises this threshold after the first
    large free (up to 32 MB), after which Pillow's 16 MB blocks come from per-thread heaps that keep
    the memory: a few decoded bombs on different threads then held gigabytes. No-op off glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def declared_pixels(data: bytes) -> int:
    """Pixels an upload declares in its header (0 when it cannot be read: `sanitize` refuses it later)."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - sanitize gives the precise refusal
        return 0


class DecodeBudget:
    """Bounds the pixels being decoded at once across all requests, so a burst of decompression bombs
    (a 116 KB flat PNG can declare 40 million pixels, ~120 MB decoded and a few copies of that while it
    is converted and re-encoded) has a memory ceiling: about ``pixels × 12 bytes`` above the idle process.

    A request reserves the pixels its images declare before decoding any of them, and waits for room up
    to ``wait_seconds``; after that it is refused with 503 and ``Retry-After`` (the server is busy, the
    upload is fine). A request declaring more than the whole budget is refused with 413 at once."""

    def __init__(self, pixels: int, *, wait_seconds: float = 30.0, on_change=None) -> None:  # type: ignore[no-untyped-def]
        self.pixels = pixels
        self.wait_seconds = wait_seconds
        self.on_change = on_change  # called with the pixels in use (a metrics gauge)
        self._in_use = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        """The pixels reserved right now."""
        return self._in_use

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        from backend.core.errors import ServiceUnavailable

        if pixels > self.pixels:
            raise ImageRejected(
                "too_large",
                f"The images of this request declare {pixels} pixels together; the limit is {self.pixels}.",
            )
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_use + pixels <= self.pixels, self.wait_seconds):
                raise ServiceUnavailable(
                    "the server is decoding too many images right now; try again shortly",
                    headers={"Retry-After": "5"},
                )
            self._in_use += pixels
            self._changed()
        try:
            yield
        finally:
            with self._cond:
                self._in_use -= pixels
                self._changed()
                self._cond.notify_all()

    def _changed(self) -> None:
        if self.on_change:
            self.on_change(self._in_use)

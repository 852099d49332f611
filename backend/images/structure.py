"""Where an image's own data ends, to detect truncation and trailing data (polyglot files).

A decoder stops at the end-of-image marker and silently ignores what follows, so a valid JPEG with a
ZIP or an HTML page appended decodes fine. These walkers find the true end of the container without
decoding anything: JPEG markers to EOI (skipping segments by length, so the EOI of an EXIF thumbnail
inside APP1 is not mistaken for the end), PNG chunks to IEND, ISO-BMFF (HEIF) top-level boxes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 carry no length
_BMFF_TOP_LEVEL_BOXES = {
    b"ftyp",
    b"meta",
    b"mdat",
    b"moov",
    b"free",
    b"skip",
    b"uuid",
    b"wide",
    b"pdin",
    b"styp",
}


def payload_end(data: bytes, image_format: str) -> int | None:
    """Offset just past the image's last byte, or None when the end marker is missing (truncated)."""
    walkers: dict[str, Callable[[bytes], int | None]] = {
        "JPEG": _jpeg_end,
        "MPO": _mpo_end,
        "PNG": _png_end,
        "HEIF": _bmff_end,
    }
    return walkers[image_format](data)


def _jpeg_end(data: bytes, start: int = 0) -> int | None:
    if data[start : start + 2] != b"\xff\xd8":
        return None
    pos = start + 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == _EOI:
            return pos + 2
        elif marker in _STANDALONE_MARKERS:
            pos += 2
        else:
            if pos + 4 > len(data):
                return None
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == _SOS:
                pos = _skip_entropy_coded(data, pos)
    return None


# A marker after scan data: 0xFF followed by anything but 0x00 (stuffing) or RSTn (both part of the scan).
_SCAN_END = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])", re.DOTALL)


def _skip_entropy_coded(data: bytes, pos: int) -> int:
    """Skip scan data to the next marker (one regular-expression search: a scan holds an 0xFF every few
    hundred bytes, too many for a loop in Python on every upload)."""
    match = _SCAN_END.search(data, pos)
    return match.start() if match else len(data)


def _mpo_end(data: bytes) -> int | None:
    """An MPO is JPEGs back to back (primary, then e.g. depth or preview): all must be complete."""
    end = _jpeg_end(data)
    while end is not None and end < len(data) and data[end : end + 2] == b"\xff\xd8":
        end = _jpeg_end(data, end)
    return end


def _png_end(data: bytes) -> int | None:
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = data[pos + 4 : pos + 8]
        pos += 12 + length  # length, type, data, CRC
        if chunk_type == b"IEND":
            return pos if pos <= len(data) else None
    return None


def _bmff_end(data: bytes) -> int | None:
    """Walk top-level boxes; the last must end exactly at the end of the file."""
    pos = 0
    while pos + 8 <= len(data):
        if data[pos + 4 : pos + 8] not in _BMFF_TOP_LEVEL_BOXES:
            return pos  # garbage where a box should be: the image ended just before
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 1:  # 64-bit size follows the type
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:  # box extends to the end of the file
            return len(data)
        if size < 8:
            return pos
        if pos + size > len(data):
            return None  # a real box cut short
        pos += size
    return pos

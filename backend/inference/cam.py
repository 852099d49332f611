"""Class-activation maps (CAM) for the MobileNetV2 classifier: where the model looked, not a diagnosis.

MobileNetV2's head is global average pooling followed by one dense layer, so the logit of class ``c`` is
exactly the spatial mean of the per-class map ``M_c(h, w) = sum_k F_k(h, w) W[k, c] + b[c]`` over the last
convolutional feature map ``F`` (7x7 at 224x224 input). A CAM-capable model (see
``training/cam_export.py``) returns those maps, ``[N, 7, 7, n_classes]``, as a second output next to the
unchanged probabilities. This module turns one image's map into a colour overlay PNG.

Only numpy and Pillow: the serving install can use it. The analysis keeps each image's top-class map;
the first view of its heatmap (`CaseService.heatmap`) draws the overlay with `heatmap_png` and keeps it
encrypted with the case result.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

LABEL = "Where the model looked, not a diagnosis"

# A perceptually ordered blue -> cyan -> green -> yellow -> red ramp (anchor colours of "turbo"-like maps).
_ANCHORS = np.array(
    [
        [48, 18, 59],
        [65, 105, 225],
        [30, 190, 230],
        [70, 240, 120],
        [200, 240, 50],
        [250, 180, 40],
        [230, 80, 20],
        [122, 4, 3],
    ],
    np.float32,
)


def class_map(maps: np.ndarray, class_index: int) -> np.ndarray:
    """The ``[h, w]`` map of one class from one image's ``[h, w, n_classes]`` maps."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"expected one image's maps [h, w, n_classes], got shape {maps.shape}")
    return maps[..., class_index].astype(np.float32)


def normalise(cam: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (a flat map becomes all zeros): the overlay shows relative evidence."""
    cam = np.asarray(cam, np.float32)
    lo, hi = float(cam.min()), float(cam.max())
    if hi - lo < 1e-12:
        return np.zeros_like(cam)
    return (cam - lo) / (hi - lo)


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map to ``size = (width, height)`` (float, not quantised)."""
    img = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), np.float32)


def colourise(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB along the blue-to-red ramp."""
    v = np.clip(np.asarray(values, np.float32), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_ANCHORS) - 1)
    t = (v - lo)[..., None]
    return np.rint(_ANCHORS[lo] * (1 - t) + _ANCHORS[hi] * t).astype(np.uint8)


# The ramp sampled at 256 levels: the overlay looks colours up instead of interpolating per pixel
# (3 ms -> 0.1 ms at 224x224; at most one level away from `colourise`).
_LUT = colourise(np.linspace(0.0, 1.0, 256))


def overlay(image: np.ndarray, cam: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Blend the colourised, upsampled map over a uint8 RGB image ``[H, W, 3]`` of any size."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    levels = np.rint(np.clip(upsample(normalise(cam), (image.shape[1], image.shape[0])), 0, 1) * 255)
    heat = _LUT[levels.astype(np.uint8)]
    return np.asarray(Image.blend(Image.fromarray(image, "RGB"), Image.fromarray(heat, "RGB"), opacity))


def overlay_png(image: np.ndarray, cam: np.ndarray, opacity: float = 0.45, compress_level: int = 1) -> bytes:
    """:func:`overlay` encoded as a PNG (no metadata), ready to store encrypted like the images.

    zlib level 1: several times faster than Pillow's default level 6 for a slightly larger file; its
    cost per image is measured by ``python -m benchmarks.heatmap``."""
    buf = io.BytesIO()
    Image.fromarray(overlay(image, cam, opacity), "RGB").save(
        buf, format="PNG", compress_level=compress_level
    )
    return buf.getvalue()


def heatmap_png(image: bytes, cam: np.ndarray) -> bytes:
    """The heatmap of a stored image: its encoded bytes reduced to the model's input by the shared
    preprocessing (as the model saw it), with ``cam`` (its top class's ``[h, w]`` map) laid over it."""
    from backend.inference.preprocess import load_image

    return overlay_png(load_image(image), np.asarray(cam, np.float32))


def top_cells(cam: np.ndarray, k: int) -> np.ndarray:
    """Boolean ``[h, w]`` mask of the ``k`` highest cells of a map (ties broken by position)."""
    flat = np.asarray(cam).ravel()
    mask = np.zeros(flat.shape, bool)
    mask[np.argsort(-flat, kind="stable")[:k]] = True
    return mask.reshape(np.asarray(cam).shape)


def blank_cells(image: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Fill the image regions under the ``True`` cells of an ``[h, w]`` grid with the image's mean colour."""
    image = np.asarray(image)
    h, w = cells.shape
    H, W = image.shape[:2]
    ys = np.arange(H) * h // H
    xs = np.arange(W) * w // W
    mask = cells[ys[:, None], xs[None, :]]
    out = image.copy()
    out[mask] = np.rint(image.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    return out

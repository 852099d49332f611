"""The one preprocessing contract shared by the backend, the evaluation CLI and the Triton path.

The exported model takes plain uint8 RGB images of shape ``[N, 224, 224, 3]``: the *whole* image
resized to 224x224 (no crop, aspect ratio not kept) with antialiased bilinear resampling.
Scaling to the range the ImageNet weights expect lives inside the model, so no client scales pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

INPUT_SIZE = 224


def to_model_input(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Return one ``[size, size, 3]`` uint8 RGB array for a decoded PIL image.

    EXIF orientation is applied first, so a phone photo is classified the way it is displayed.
    ``Image.resize`` with BILINEAR is antialiased when it shrinks (PIL widens the filter support).
    """
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def oriented_to_model_input(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """:func:`to_model_input` for an RGB image whose EXIF orientation was already applied (intake's
    sanitised pixels): the same resize, without the copy ``exif_transpose`` would make."""
    if image.mode != "RGB":
        raise ValueError(f"expected RGB pixels, got {image.mode}")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_image(source: str | Path | bytes, size: int = INPUT_SIZE) -> np.ndarray:
    """Decode a file path or encoded bytes and apply :func:`to_model_input`."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        image.load()
        return to_model_input(image, size)


def batch(images: list[np.ndarray]) -> np.ndarray:
    """Stack preprocessed images into one ``[N, H, W, 3]`` uint8 batch."""
    return np.stack(images).astype(np.uint8, copy=False)

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


def shades_of_gray(pixels: np.ndarray, p: float = 6.0) -> np.ndarray:
    """Shades of Gray colour constancy (Finlayson & Trezzi 2004) on uint8 RGB, ``[H, W, 3]`` or ``[N, H, W, 3]``.

    Each image's illuminant is estimated as the per-channel Minkowski p-norm mean of its pixels
    (``p=1`` is Gray World, ``p=inf`` is max-RGB; ``p=6`` is what the top ISIC 2018 entries used), and each
    channel is scaled so that the illuminant becomes neutral grey while the overall brightness (the
    mean of the three estimates) is kept. Dermoscopes and phone cameras differ mostly in white balance,
    so this removes a nuisance the model would otherwise have to learn.

    Not applied by :func:`load_image`: a model must be trained with it (v1 was not). A model that is
    trained with it must get it from here in training, the backend and Triton alike.
    """
    x = np.asarray(pixels)
    if x.dtype != np.uint8 or x.shape[-1] != 3 or x.ndim not in (3, 4):
        raise ValueError(f"expected uint8 RGB [H, W, 3] or [N, H, W, 3], got {x.dtype} {x.shape}")
    f = x.astype(np.float32)
    axes = (-3, -2)
    illuminant = np.power(np.mean(np.power(f, p), axis=axes, keepdims=True), 1.0 / p)
    gain = illuminant.mean(axis=-1, keepdims=True) / np.maximum(illuminant, 1e-6)
    return np.clip(np.rint(f * gain), 0, 255).astype(np.uint8)

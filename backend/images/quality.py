"""A cheap image-quality check for triage: a poor photo sends the case to a specialist ("review").

Three measures on a grayscale copy downscaled to `ANALYSIS_LONG_SIDE` (so a phone's 4000 px photo and
a 200 px one are judged at a comparable scale, in a few milliseconds, numpy only):

* sharpness: variance of the 4-neighbour Laplacian; blur removes the high frequencies it responds to;
* exposure: fractions of nearly black and nearly white pixels;
* resolution: the shorter side of the original image.

Thresholds were calibrated on HAM10000 (``data/ham10000``): all 10,015 ``images_200x150`` and all 35
``full_size`` 600×450 dermoscopy images pass; their Laplacian variance is at least 5.67 (200×150) and
41.8 (600×450), dark fractions at most 0.27 and bright fractions at most 0.33. Copies blurred with
``GaussianBlur(8)`` score at most 2.82 (600×450) and 2.09 (200×150), so the blur threshold sits at
their geometric middle, 4.0. The exposure thresholds (half the picture lost to black or white) leave a
wide margin over the real images and catch a lens-cap or flash-blown photo. The dermoscopy set is
evenly lit and in focus; clinical phone photos may score lower, which errs towards specialist review.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

ANALYSIS_LONG_SIDE = 256
MIN_LAPLACIAN_VARIANCE = 4.0
DARK_LEVEL, MAX_DARK_FRACTION = 20, 0.5  # luma below DARK_LEVEL counts as black
BRIGHT_LEVEL, MAX_BRIGHT_FRACTION = 245, 0.5  # luma above BRIGHT_LEVEL counts as blown out
MIN_SHORT_SIDE = 150  # the HAM10000 sample's shorter side; less holds too little lesion detail


@dataclass(frozen=True)
class QualityReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    laplacian_variance: float = 0.0
    dark_fraction: float = 0.0
    bright_fraction: float = 0.0
    short_side: int = 0


def assess(image: Image.Image) -> QualityReport:
    """Measure sharpness, exposure and resolution; ``reasons`` names each threshold that failed."""
    luma = _downscaled_luma(image)
    laplacian_variance = float(_laplacian(luma).var())
    dark_fraction = float((luma < DARK_LEVEL).mean())
    bright_fraction = float((luma > BRIGHT_LEVEL).mean())
    short_side = min(image.size)
    reasons = []
    if laplacian_variance < MIN_LAPLACIAN_VARIANCE:
        reasons.append(f"blurred: sharpness {laplacian_variance:.2f} < {MIN_LAPLACIAN_VARIANCE}")
    if dark_fraction > MAX_DARK_FRACTION:
        reasons.append(f"too dark: {dark_fraction:.0%} of pixels nearly black")
    if bright_fraction > MAX_BRIGHT_FRACTION:
        reasons.append(f"too bright: {bright_fraction:.0%} of pixels nearly white")
    if short_side < MIN_SHORT_SIDE:
        reasons.append(f"low resolution: shorter side {short_side} px < {MIN_SHORT_SIDE}")
    return QualityReport(
        ok=not reasons,
        reasons=reasons,
        laplacian_variance=laplacian_variance,
        dark_fraction=dark_fraction,
        bright_fraction=bright_fraction,
        short_side=short_side,
    )


def _downscaled_luma(image: Image.Image) -> np.ndarray:
    # A large photo is first box-reduced by a whole factor that keeps it at least twice the analysis
    # size (cheap, and a box of boxes is still a box filter), so the grey conversion never touches
    # millions of pixels; images up to 2 × ANALYSIS_LONG_SIDE (HAM10000's, on which the thresholds
    # were calibrated) take exactly the path they took before.
    factor = max(image.size) // (2 * ANALYSIS_LONG_SIDE)
    if factor >= 2:
        image = image.reduce(factor)
    gray = image.convert("L")
    scale = ANALYSIS_LONG_SIDE / max(gray.size)
    if scale < 1:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32)


def _laplacian(a: np.ndarray) -> np.ndarray:
    return a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]

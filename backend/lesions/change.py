"""Measured change between two photos of one lesion: segment, register, measure.

The pipeline, all scikit-image and numpy, on copies downscaled to ``WORK_LONG_SIDE`` pixels:

1. **Segment** (`segment`): a morphological closing of the luminance removes hairs (thin dark lines)
   and specks; Otsu's threshold on the closed image separates the darker lesion from skin; components
   that touch the border (dermoscope vignette, shadow at the edge) are dropped unless nothing else is
   left; the largest remaining component near the centre is the lesion, holes filled.
2. **Register** (`register`): SIFT keypoints on both luminance images, matched with the ratio test,
   and a similarity transform (rotation, scale, shift) fitted with RANSAC. The skin around the lesion
   supplies most of the matches, so a change of camera distance shows up as scale, while a lesion that
   grows does not. Too few inliers, an implausible scale or too little overlap mean the pair cannot be
   compared: `NotComparable` is raised with a plain reason, and no number is given.
3. **Measure** (`compare`): the follow-up is warped into the baseline's frame and each lesion is
   measured: area, maximum Feret diameter, border irregularity (perimeter² / 4π·area, 1 for a circle),
   asymmetry (the fraction of the lesion that does not overlap its own mirror image about its principal
   axes), mean colour in CIELAB, and the dermoscopic colours present (the six colours of the ABCD rule,
   each counted when it covers at least ``COLOUR_MIN_FRACTION`` of the lesion).

The single ``change_score`` is the largest of the measured changes, each divided by the change that
`docs/lesions.md` calls significant (`SIGNIFICANT`): a score of 1 or more means at least one measure
moved by a significant amount. The thresholds are checked on HAM10000 by
``dermalink lesions evaluate-change`` (same-lesion photo pairs as "no real change" against synthetic
growth, recolouring and camera moves); its report is ``docs/lesion_change_eval.md``.

This is decision support for a specialist: photos taken under different light, angle or device can move
every number, which is why registration failures are reported instead of guessed around.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color, exposure, feature, filters, measure, morphology, transform
from skimage.segmentation import clear_border

WORK_LONG_SIDE = 320
MIN_INLIERS = 12
SIFT_CONTRAST = 0.004  # skimage's default 0.013/3 finds too few keypoints on faint skin texture
SCALE_RANGE = (0.5, 2.0)
MIN_OVERLAP = 0.5  # of the baseline's lesion must be inside the warped follow-up photo
MIN_DICE = 0.3  # overlap of the two outlines after alignment; less means another spot was outlined
MIN_LESION_FRACTION = 0.005  # of the image; less is not a lesion we can measure
COLOUR_MIN_FRACTION = 0.05

# Changes treated as significant (score 1.0). Area: a 25% larger or smaller lesion; diameter: 15%;
# border irregularity and asymmetry: +0.25 and +0.10 on their scales; colour: ΔE2000 of 8 between mean
# lesion colours (2–3 is a just-noticeable difference; same-lesion photos under other light differ by
# several units); two dermoscopic colours more (the colour count of one photo moves by one
# under other light, so one colour is within noise).
SIGNIFICANT = {
    "area_ratio": math.log(1.25),
    "diameter_change": 0.15,
    "irregularity_change": 0.25,
    "asymmetry_change": 0.10,
    "colour_delta_e": 8.0,
    "colour_count_change": 2.0,
}

# The six dermoscopic colours of the ABCD rule, as sRGB reference points (Seidenari et al.).
DERMOSCOPIC_COLOURS = {
    "white": (0.92, 0.92, 0.92),
    "red": (0.78, 0.25, 0.25),
    "light_brown": (0.70, 0.48, 0.32),
    "dark_brown": (0.36, 0.22, 0.14),
    "blue_grey": (0.42, 0.48, 0.60),
    "black": (0.10, 0.08, 0.08),
}


class NotComparable(Exception):
    """The two photos cannot be compared; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Shape:
    area_px: float
    diameter_px: float
    irregularity: float
    asymmetry: float
    mean_lab: tuple[float, float, float]
    colours: tuple[str, ...]


@dataclass(frozen=True)
class Registration:
    scale: float
    rotation_deg: float
    shift_px: tuple[float, float]
    inliers: int
    matches: int
    matrix: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Change:
    baseline: Shape
    followup: Shape
    registration: Registration
    area_ratio: float
    diameter_change: float  # relative: +0.2 is 20% larger
    irregularity_change: float
    asymmetry_change: float
    colour_delta_e: float
    colour_count_change: int
    change_score: float
    significant: tuple[str, ...]  # the measures that moved by a significant amount

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AlignedPair:
    """The pair in the baseline's frame, for display: RGB float images in [0, 1] and the two masks."""

    baseline: np.ndarray
    followup: np.ndarray
    baseline_mask: np.ndarray
    followup_mask: np.ndarray

    def difference_overlay(self) -> np.ndarray:
        """The baseline in grey with the lesion's growth in orange and its regression in blue."""
        grey = np.repeat(color.rgb2gray(self.baseline)[..., None], 3, axis=2) * 0.7 + 0.15
        out = grey.copy()
        grown = self.followup_mask & ~self.baseline_mask
        shrunk = self.baseline_mask & ~self.followup_mask
        both = self.baseline_mask & self.followup_mask
        out[both] = 0.6 * grey[both] + 0.4 * np.array([0.55, 0.55, 0.55])
        out[grown] = np.array([1.0, 0.55, 0.0])
        out[shrunk] = np.array([0.1, 0.45, 1.0])
        edge_b = self.baseline_mask ^ morphology.erosion(self.baseline_mask, morphology.disk(1))
        out[edge_b] = np.array([1.0, 1.0, 1.0])
        return np.clip(out, 0.0, 1.0)


def to_work_image(image: Image.Image) -> np.ndarray:
    """An RGB float array in [0, 1] with its long side at most ``WORK_LONG_SIDE``."""
    rgb = image.convert("RGB")
    scale = WORK_LONG_SIDE / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.float64) / 255.0


def segment(rgb: np.ndarray) -> np.ndarray:
    """A boolean mask of the lesion, or `NotComparable` when no lesion can be found."""
    luma = color.rgb2gray(rgb)
    radius = max(2, round(min(luma.shape) / 50))
    closed = morphology.closing(luma, morphology.disk(radius))  # hairs and specks are thin and dark
    smooth = filters.gaussian(closed, sigma=1.5)
    darker = smooth < filters.threshold_otsu(smooth)
    darker = morphology.opening(darker, morphology.disk(radius))
    inner = clear_border(darker)
    candidates = inner if inner.sum() >= MIN_LESION_FRACTION * inner.size else darker
    labels = measure.label(candidates)
    if labels.max() == 0:
        raise NotComparable("no lesion could be outlined in the photo")
    centre = np.array(luma.shape) / 2
    half_diagonal = float(np.hypot(*centre))

    def weight(region: measure._regionprops.RegionProperties) -> float:
        distance = float(np.hypot(*(np.array(region.centroid) - centre))) / half_diagonal
        return region.area * (1.0 - 0.7 * distance)

    best = max(measure.regionprops(labels), key=weight)
    mask = labels == best.label
    if mask.sum() < MIN_LESION_FRACTION * mask.size:
        raise NotComparable("the lesion is too small in the photo to be measured")
    return ndimage.binary_fill_holes(mask)


def shape_of(rgb: np.ndarray, mask: np.ndarray) -> Shape:
    props = measure.regionprops(mask.astype(np.uint8))[0]
    area = float(props.area)
    perimeter = float(props.perimeter) or 1.0
    lab = color.rgb2lab(rgb)
    inside = lab[mask]
    return Shape(
        area_px=area,
        diameter_px=float(props.feret_diameter_max),
        irregularity=perimeter**2 / (4 * math.pi * area),
        asymmetry=_asymmetry(mask, props),
        mean_lab=tuple(round(float(v), 3) for v in inside.mean(axis=0)),  # type: ignore[arg-type]
        colours=_dermoscopic_colours(rgb[mask]),
    )


def register(
    baseline: np.ndarray, followup: np.ndarray
) -> tuple[transform.SimilarityTransform, Registration]:
    """Fit the similarity transform that maps follow-up coordinates onto the baseline's."""
    keypoints, descriptors = [], []
    for rgb in (baseline, followup):
        sift = feature.SIFT(upsampling=2, n_octaves=4, c_dog=SIFT_CONTRAST)
        try:
            sift.detect_and_extract(exposure.equalize_adapthist(color.rgb2gray(rgb)))
        except RuntimeError as exc:  # no keypoints at all (a flat or blurred photo)
            raise NotComparable("the photos have too little detail to be aligned") from exc
        keypoints.append(sift.keypoints[:, ::-1])  # (row, col) -> (x, y)
        descriptors.append(sift.descriptors)
    if min(len(k) for k in keypoints) < MIN_INLIERS:
        raise NotComparable("the photos have too little detail to be aligned")
    matches = feature.match_descriptors(descriptors[1], descriptors[0], max_ratio=0.8, cross_check=True)
    if len(matches) < MIN_INLIERS:
        raise NotComparable("the photos do not show enough of the same skin to be aligned")
    source = keypoints[1][matches[:, 0]]
    target = keypoints[0][matches[:, 1]]
    model, inliers = measure.ransac(
        (source, target),
        transform.SimilarityTransform,
        min_samples=3,
        residual_threshold=2.5,
        max_trials=2000,
        rng=0,
    )
    count = int(inliers.sum()) if inliers is not None else 0
    if model is None or count < MIN_INLIERS:
        raise NotComparable("the photos could not be aligned: too few matching skin features")
    if not SCALE_RANGE[0] <= model.scale <= SCALE_RANGE[1]:
        raise NotComparable(f"the photos differ too much in distance (scale {model.scale:.2f})")
    info = Registration(
        scale=round(float(model.scale), 4),
        rotation_deg=round(math.degrees(float(model.rotation)), 2),
        shift_px=(round(float(model.translation[0]), 2), round(float(model.translation[1]), 2)),
        inliers=count,
        matches=len(matches),
        matrix=tuple(tuple(round(float(v), 6) for v in row) for row in model.params),
    )
    return model, info


def align(baseline: np.ndarray, followup: np.ndarray) -> tuple[AlignedPair, Registration]:
    """Register the follow-up onto the baseline and segment both, in the baseline's frame."""
    model, info = register(baseline, followup)
    shape = baseline.shape[:2]
    warped = transform.warp(followup, model.inverse, output_shape=shape, order=1, cval=np.nan)
    valid = ~np.isnan(warped).any(axis=2)
    warped = np.where(valid[..., None], warped, baseline)  # outside the follow-up: show the baseline
    baseline_mask = segment(baseline)
    if (baseline_mask & valid).sum() < MIN_OVERLAP * baseline_mask.sum():
        raise NotComparable("the follow-up photo does not show enough of the lesion")
    followup_mask = segment(warped) & valid
    overlap = 2 * (baseline_mask & followup_mask).sum() / (baseline_mask.sum() + followup_mask.sum())
    if overlap < MIN_DICE:
        # Registration says where the lesion must be; a segmentation elsewhere is a different spot.
        raise NotComparable("the lesion could not be found at the same place in both photos")
    return AlignedPair(baseline, warped, baseline_mask, followup_mask), info


def compare(baseline: Image.Image, followup: Image.Image) -> tuple[Change, AlignedPair]:
    """Measure how the lesion changed from ``baseline`` to ``followup`` (raises `NotComparable`)."""
    pair, info = align(to_work_image(baseline), to_work_image(followup))
    before = shape_of(pair.baseline, pair.baseline_mask)
    after = shape_of(pair.followup, pair.followup_mask)
    values = {
        "area_ratio": after.area_px / before.area_px,
        "diameter_change": after.diameter_px / before.diameter_px - 1.0,
        "irregularity_change": after.irregularity - before.irregularity,
        "asymmetry_change": after.asymmetry - before.asymmetry,
        "colour_delta_e": float(color.deltaE_ciede2000(np.array(before.mean_lab), np.array(after.mean_lab))),
        "colour_count_change": len(after.colours) - len(before.colours),
    }
    score, significant = change_score(values)
    change = Change(
        baseline=before,
        followup=after,
        registration=info,
        area_ratio=round(values["area_ratio"], 4),
        diameter_change=round(values["diameter_change"], 4),
        irregularity_change=round(values["irregularity_change"], 4),
        asymmetry_change=round(values["asymmetry_change"], 4),
        colour_delta_e=round(values["colour_delta_e"], 3),
        colour_count_change=int(values["colour_count_change"]),
        change_score=round(score, 4),
        significant=significant,
    )
    return change, pair


def change_score(values: dict[str, float]) -> tuple[float, tuple[str, ...]]:
    """The largest measured change relative to its significant amount, and the measures at or over 1."""
    ratios = {
        "area_ratio": abs(math.log(max(values["area_ratio"], 1e-6))) / SIGNIFICANT["area_ratio"],
        "diameter_change": abs(values["diameter_change"]) / SIGNIFICANT["diameter_change"],
        "irregularity_change": max(values["irregularity_change"], 0.0) / SIGNIFICANT["irregularity_change"],
        "asymmetry_change": max(values["asymmetry_change"], 0.0) / SIGNIFICANT["asymmetry_change"],
        "colour_delta_e": values["colour_delta_e"] / SIGNIFICANT["colour_delta_e"],
        "colour_count_change": max(values["colour_count_change"], 0.0) / SIGNIFICANT["colour_count_change"],
    }
    significant = tuple(name for name, ratio in ratios.items() if ratio >= 1.0)
    return max(ratios.values()), significant


def _asymmetry(mask: np.ndarray, props: measure._regionprops.RegionProperties) -> float:
    """Mean non-overlap of the lesion with its mirror images about its two principal axes (0 = symmetric)."""
    rows, cols = np.nonzero(mask)
    cy, cx = props.centroid
    angle = props.orientation  # between the row axis and the major axis
    cos, sin = math.cos(angle), math.sin(angle)
    # Coordinates in the principal frame (u along the major axis, v across it).
    u = (rows - cy) * cos + (cols - cx) * sin
    v = -(rows - cy) * sin + (cols - cx) * cos
    points = set(zip(np.round(u).astype(int), np.round(v).astype(int), strict=True))
    total = len(points)
    if total == 0:
        return 0.0
    across = sum((a, -b) in points for a, b in points)
    along = sum((-a, b) in points for a, b in points)
    return round(1.0 - (across + along) / (2 * total), 4)


def _dermoscopic_colours(pixels: np.ndarray) -> tuple[str, ...]:
    names = list(DERMOSCOPIC_COLOURS)
    references = color.rgb2lab(np.array([DERMOSCOPIC_COLOURS[n] for n in names])[None, ...])[0]
    lab = color.rgb2lab(pixels[None, ...])[0]
    distances = np.linalg.norm(lab[:, None, :] - references[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    fractions = np.bincount(nearest, minlength=len(names)) / max(len(nearest), 1)
    return tuple(n for n, f in zip(names, fractions, strict=True) if f >= COLOUR_MIN_FRACTION)

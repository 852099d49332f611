"""How well the change score separates "no real change" from "change", on real HAM10000 images.

* **No real change**: two photos of one lesion (HAM10000 has several images per ``lesion_id``, taken at
  other magnifications, angles and light), and one photo against itself moved as a camera would move it
  (rotation, zoom, shift).
* **Change**: one photo against a synthetic follow-up in which the lesion itself grew (scaled about its
  centre, so its area grows by ``GROWTH``²) or darkened towards blue-grey (a colour change), each also
  moved as a camera would move it.

For each kind the report gives how often the pair could be compared at all (`NotComparable` otherwise)
and, of those, how often the score called the change significant; over all compared pairs, the area
under the ROC curve of the score. ``dermalink lesions evaluate-change`` writes it to ``docs/lesion_change_eval.md``.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import color, filters, transform

from backend.lesions import change as ch

GROWTH = 1.2  # linear: the area grows by 44%
NO_CHANGE_KINDS = ("same lesion, other photo", "same photo, camera moved")
CHANGE_KINDS = ("lesion grew", "lesion darkened")


@dataclass(frozen=True)
class Outcome:
    kind: str
    lesion_id: str
    comparable: bool
    score: float | None = None
    significant: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.kind in CHANGE_KINDS


def same_lesion_pairs(metadata_csv: Path, limit: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(lesion_id, image_a, image_b) for ``limit`` lesions with at least two images, in a fixed order."""
    by_lesion: dict[str, list[str]] = {}
    with metadata_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_lesion.setdefault(row["lesion_id"], []).append(row["image_id"])
    pairs = [
        (lesion, images[0], images[1]) for lesion, images in sorted(by_lesion.items()) if len(images) > 1
    ]
    random.Random(seed).shuffle(pairs)
    return pairs[:limit]


def camera_move(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """The same skin photographed again: rotated up to 30°, zoomed ±10%, shifted up to 5% of the size."""
    height, width = rgb.shape[:2]
    centre = np.array([width / 2, height / 2])
    shift = np.array([rng.uniform(-0.05, 0.05) * width, rng.uniform(-0.05, 0.05) * height])
    move = (
        transform.SimilarityTransform(translation=-centre)
        + transform.SimilarityTransform(
            scale=rng.uniform(0.9, 1.1), rotation=math.radians(rng.uniform(-30, 30))
        )
        + transform.SimilarityTransform(translation=centre + shift)
    )
    return transform.warp(rgb, move.inverse, mode="reflect")


def grow_lesion(rgb: np.ndarray, factor: float = GROWTH) -> np.ndarray:
    """The lesion scaled by ``factor`` about its centroid and blended onto the unchanged skin."""
    mask = ch.segment(rgb)
    rows, cols = np.nonzero(mask)
    centre = np.array([cols.mean(), rows.mean()])
    zoom = (
        transform.SimilarityTransform(translation=-centre)
        + transform.SimilarityTransform(scale=factor)
        + transform.SimilarityTransform(translation=centre)
    )
    grown = transform.warp(rgb, zoom.inverse, mode="edge")
    grown_mask = transform.warp(mask.astype(float), zoom.inverse, order=0) > 0.5
    alpha = filters.gaussian(grown_mask.astype(float), sigma=2)[..., None]
    return alpha * grown + (1 - alpha) * rgb


def darken_lesion(rgb: np.ndarray) -> np.ndarray:
    """The lesion 25% darker and shifted towards blue-grey (CIELAB b* −12), skin unchanged."""
    mask = ch.segment(rgb)
    lab = color.rgb2lab(rgb)
    changed = lab.copy()
    changed[..., 0] *= 0.75
    changed[..., 2] -= 12
    alpha = filters.gaussian(mask.astype(float), sigma=2)[..., None]
    return np.clip(alpha * color.lab2rgb(changed) + (1 - alpha) * rgb, 0, 1)


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))


def evaluate(
    images_dir: Path,
    pairs: Iterable[tuple[str, str, str]],
    *,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Compare every pair in the four ways described in the module docstring."""
    rng = random.Random(seed)
    outcomes = []
    for lesion, first, second in pairs:
        a = Image.open(images_dir / f"{first}.jpg")
        b = Image.open(images_dir / f"{second}.jpg")
        base = ch.to_work_image(a)
        for kind in NO_CHANGE_KINDS + CHANGE_KINDS:
            try:
                result, _ = ch.compare(_to_image(base), _followup(kind, base, b, rng))
                outcomes.append(Outcome(kind, lesion, True, result.change_score, result.significant))
            except ch.NotComparable as exc:
                outcomes.append(Outcome(kind, lesion, False, reason=exc.reason))
            if progress:
                progress()
    return outcomes


def _followup(kind: str, base: np.ndarray, other_photo: Image.Image, rng: random.Random) -> Image.Image:
    if kind == NO_CHANGE_KINDS[0]:
        return other_photo
    if kind == NO_CHANGE_KINDS[1]:
        return _to_image(camera_move(base, rng))
    changed = grow_lesion(base) if kind == CHANGE_KINDS[0] else darken_lesion(base)
    return _to_image(camera_move(changed, rng))


def roc_auc(negatives: list[float], positives: list[float]) -> float:
    """P(score of a change pair > score of a no-change pair), ties counting half (Mann–Whitney)."""
    if not negatives or not positives:
        return float("nan")
    neg = np.asarray(negatives)[None, :]
    pos = np.asarray(positives)[:, None]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def summarise(outcomes: list[Outcome]) -> dict:
    rows = []
    for kind in NO_CHANGE_KINDS + CHANGE_KINDS:
        of_kind = [o for o in outcomes if o.kind == kind]
        compared = [o for o in of_kind if o.comparable]
        flagged = sum(bool(o.significant) for o in compared)
        rows.append(
            {
                "kind": kind,
                "change": kind in CHANGE_KINDS,
                "pairs": len(of_kind),
                "compared": len(compared),
                "flagged": flagged,
                "flagged_fraction": flagged / len(compared) if compared else float("nan"),
                "median_score": float(np.median([o.score for o in compared])) if compared else float("nan"),
            }
        )
    negatives = [o.score for o in outcomes if o.comparable and not o.changed]
    positives = [o.score for o in outcomes if o.comparable and o.changed]
    reasons: dict[str, int] = {}
    for o in outcomes:
        if not o.comparable:
            reasons[o.reason or "?"] = reasons.get(o.reason or "?", 0) + 1
    return {"rows": rows, "auc": roc_auc(negatives, positives), "not_comparable": reasons}


def write_report(outcomes: list[Outcome], out_dir: Path, command: str) -> Path:
    """docs/lesion_change_eval.md, plus a plot of the score by kind (lesion_change_scores.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(outcomes)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 3.6))
    kinds = NO_CHANGE_KINDS + CHANGE_KINDS
    data = [[o.score for o in outcomes if o.kind == k and o.comparable] for k in kinds]
    axis.boxplot(data, vert=False, tick_labels=list(kinds), showfliers=True)
    axis.axvline(1.0, color="crimson", linestyle="--", label="significant (score 1)")
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlabel("change score (largest measured change / its significant amount)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    plot = out_dir / "lesion_change_scores.png"
    figure.savefig(plot, dpi=110)
    plt.close(figure)

    lines = [
        "# Lesion change: how well the score separates change from re-photographing",
        "",
        "HAM10000 200×150 images; method and limits in [lesions.md](lesions.md). A pair is *flagged* when its",
        "change score is 1 or more (at least one measure moved by its significant amount).",
        "",
        "| pair kind | real change? | pairs | compared | flagged as changed | median score |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in summary["rows"]:
        lines.append(
            f"| {row['kind']} | {'yes' if row['change'] else 'no'} | {row['pairs']} | {row['compared']} "
            f"| {row['flagged']} ({row['flagged_fraction']:.0%}) | {row['median_score']:.2f} |"
        )
    lines += [
        "",
        f"Area under the ROC curve of the score, compared pairs only: **{summary['auc']:.3f}**.",
        "",
        "Pairs that could not be compared, by the reason given to the user:",
        "",
    ]
    lines += [f"- {reason}: {count}" for reason, count in sorted(summary["not_comparable"].items())]
    lines += ["", f"Reproduce: `{command}`", "", f"![change scores by pair kind]({plot.name})"]
    table = out_dir / "lesion_change_eval.md"
    table.write_text("\n".join(lines) + "\n")
    return table
